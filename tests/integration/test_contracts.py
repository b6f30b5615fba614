"""The written contracts (contracts/) against the running code and the originals.

- Every event ingest builds validates against contracts/events/*.json (the originals, unchanged).
- The app's served OpenAPI agrees with contracts/api/ingest.openapi.yaml on paths, header
  parameters, request-body schemas and status codes.
- contracts/api/ingest.openapi.yaml extends the original contract compatibly.
- The served GraphQL schema is contracts/graphql/schema.graphql, which extends the original's compatibly.
- The original runbook's example requests work against the app as the runbook says.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from graphql import (
    GraphQLNonNull,
    GraphQLObjectType,
    build_client_schema,
    build_schema,
    get_introspection_query,
    lexicographic_sort_schema,
    print_schema,
)
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from litestar.testing import AsyncTestClient

from exchange.events import DlqEnvelope, DlqError, format_timestamp
from exchange.roles import Role
from exchange.settings import Settings
from tests.support.app import DEV, make_settings, running_app
from tests.support.db import fetch

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"
ORIGINALS = CONTRACTS / "original"  # the original system's files, unchanged
RUNBOOK = ORIGINALS / "runbook.md"
INGEST_PATHS = ("/v1/ingest", "/v2/ingest")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else json.loads(path.read_text())


# jsonschema checks date-time only with an optional package; this is RFC 3339's grammar.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


def validator(name: str) -> Draft202012Validator:
    schema = _load(CONTRACTS / "events" / name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FORMATS)


# -- events -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["v1.record_ingested.json", "v2.record_ingested.json"])
def test_the_event_schemas_are_the_originals_unchanged(name: str) -> None:
    assert (CONTRACTS / "events" / name).read_bytes() == (ORIGINALS / "events" / name).read_bytes()


def test_the_tokenizer_contract_extends_the_original_without_changing_it() -> None:
    ours = _load(CONTRACTS / "api" / "tokenizer.openapi.yaml")
    original = _load(ORIGINALS / "api" / "tokenizer-openapi.yaml")
    for path, operations in original["paths"].items():
        assert ours["paths"][path] == operations, path  # every original operation, as it was
    for name, schema in original["components"]["schemas"].items():
        assert ours["components"]["schemas"][name] == schema, name
    assert set(ours["paths"]) - set(original["paths"]) == {"/tokenize/linkage", "/tokenize/batch"}


def test_the_date_time_format_is_really_checked() -> None:
    schema = validator("v1.record_ingested.json").schema
    strict = Draft202012Validator(schema["properties"]["occurred_at"], format_checker=FORMATS)
    assert strict.is_valid("2026-11-23T15:20:48.123456Z")
    assert not strict.is_valid("2026-11-23 15:20:48")
    assert not strict.is_valid("2026-13-23T15:20:48Z")


async def _ingest_samples(client: AsyncTestClient[Any], source: str) -> list[str]:
    patient_v1 = {"first_name": "Sam", "last_name": "Lee", "dob": "1990-01-01", "ssn": "123-45-6789"}
    patient_v2 = {"given_name": "Sam", "family_name": "Lee", "dob": "1990-01-01"}
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
    for kind in ("encounter", "claim", "lab_result"):
        body = {"source": source, "record_type": kind, "patient": patient_v1, "payload": {"k": kind}}
        requests.append(("/v1/ingest", body, {}))
    for hint in ("partnerA.v1", "partnerA.v2", "partnerB.v1"):
        body = {"source": source, "record_kind": "lab_result", "schema_hint": hint, "patient": patient_v2,
                "payload": {}}
        requests.append(("/v2/ingest", body, {"X-Correlation-Id": f"contract-{hint}"}))
    record_ids = []
    for path, body, extra in requests:
        r = await client.post(path, json=body, headers={**DEV, "Idempotency-Key": f"contract-{uuid.uuid4()}", **extra})
        assert r.status_code == 202, r.text
        record_ids.append(r.json()["record_id"])
    return record_ids


async def test_every_event_ingest_builds_validates_against_its_contract(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str
) -> None:
    record_ids = await _ingest_samples(client, f"contract-{unique}")
    rows = await fetch(
        app_settings.database.dsn, "SELECT payload::text AS payload FROM outbox_events WHERE key = ANY($1::text[])",
        record_ids,
    )
    events = [json.loads(row["payload"]) for row in rows]
    assert sorted(e["record_id"] for e in events) == sorted(record_ids)
    validators = {"1": validator("v1.record_ingested.json"), "2": validator("v2.record_ingested.json")}
    for event in events:
        errors = [e.message for e in validators[event["event_version"]].iter_errors(event)]
        assert errors == [], (event, errors)
    assert sorted(e["event_version"] for e in events) == ["1", "1", "1", "2", "2", "2"]


async def test_the_event_schemas_reject_what_events_must_never_carry(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str
) -> None:
    [record_id] = (await _ingest_samples(client, f"contract-neg-{unique}"))[:1]
    [row] = await fetch(app_settings.database.dsn, "SELECT payload::text AS p FROM outbox_events WHERE key = $1",
                        record_id)
    event = json.loads(row["p"])
    v1 = validator("v1.record_ingested.json")
    for bad in (
        {**event, "patient": {"first_name": "Sam"}},  # no patient data in events
        {**event, "event_version": "2"},
        {**event, "occurred_at": "yesterday"},
        {**event, "raw_object": {**event["raw_object"], "sha256": "XYZ"}},
    ):
        with pytest.raises(ValidationError):
            v1.validate(bad)


async def test_the_dlq_envelope_the_code_builds_validates_against_its_contract(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str
) -> None:
    record_ids = await _ingest_samples(client, f"contract-dlq-{unique}")
    rows = await fetch(app_settings.database.dsn, "SELECT payload::text AS p FROM outbox_events WHERE key = $1",
                       record_ids[-1])
    envelope = DlqEnvelope(
        original_event=json.loads(rows[0]["p"]),
        error=DlqError(type="TokenizerUnavailable", message="tokenizer non-200", stage="tokenize"),
        attempts=5,
        failed_at=format_timestamp(dt.datetime.now(dt.UTC)),
    )
    dlq = validator("dlq_envelope.json")
    as_json = json.loads(msgspec.json.encode(envelope))
    assert list(dlq.iter_errors(as_json)) == []
    for bad in ({**as_json, "attempts": 0}, {**as_json, "extra": 1}, {**as_json, "error": {"type": "x"}}):
        assert not dlq.is_valid(bad)


# -- served OpenAPI vs the written contract ---------------------------------------------------


class Doc:
    """An OpenAPI document with local $ref resolution and OAS 3.0/3.1 nullable folded together."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    def schema(self, node: Any) -> dict[str, Any]:
        """Resolved, with ``oneOf: [X, {type: null}]`` and ``nullable: true`` both as ``nullable``."""
        node = dict(self.resolve(node))
        if len(node.get("allOf", [])) == 1:
            node = {**self.schema(node.pop("allOf")[0]), **node}
        for union in ("oneOf", "anyOf"):
            branches = node.get(union)
            if branches and any(self.resolve(b).get("type") == "null" for b in branches):
                rest = [b for b in branches if self.resolve(b).get("type") != "null"]
                assert len(rest) == 1, node
                node = {**self.schema(rest[0]), **{k: v for k, v in node.items() if k != union}, "nullable": True}
        if isinstance(node.get("type"), list) and "null" in node["type"]:
            [single] = [t for t in node["type"] if t != "null"]
            node = {**node, "type": single, "nullable": True}
        return node

    def operation(self, path: str, method: str = "post") -> dict[str, Any]:
        op: dict[str, Any] = self.doc["paths"][path][method]
        return op

    def operations(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(path, method): op for path, item in self.doc["paths"].items() for method, op in item.items()
                if method in ("get", "post", "put", "patch", "delete")}

    def headers(self, path: str) -> dict[str, dict[str, Any]]:
        params = [self.resolve(p) for p in self.operation(path).get("parameters", [])]
        return {p["name"]: p for p in params if p["in"] == "header"}

    def body(self, path: str) -> dict[str, Any]:
        request = self.resolve(self.operation(path)["requestBody"])
        assert request.get("required") is True
        return self.schema(request["content"]["application/json"]["schema"])

    def answer(self, path: str, status: str, media_type: str = "application/json") -> dict[str, Any]:
        content = self.resolve(self.operation(path)["responses"][status])["content"]
        return self.schema(content[media_type]["schema"])

    def statuses(self, path: str, method: str = "post") -> set[str]:
        return set(self.operation(path, method)["responses"])


_KEYWORDS = ("type", "format", "pattern", "minLength", "maxLength", "nullable")


def _compare(contract: Doc, c_node: Any, app: Doc, a_node: Any, where: str) -> list[str]:
    """Differences that matter to a client: required, properties, enums, closedness, constraints."""
    c, a = contract.schema(c_node), app.schema(a_node)
    problems: list[str] = []
    if c.get("type") != a.get("type"):
        problems.append(f"{where}: type {c.get('type')} != {a.get('type')}")
    if ("enum" in c or "enum" in a) and sorted(c.get("enum", [])) != sorted(a.get("enum", [])):
        problems.append(f"{where}: enum {c.get('enum')} != {a.get('enum')}")
    problems += [
        f"{where}: {keyword} {c[keyword]!r} != {a.get(keyword)!r}"
        for keyword in _KEYWORDS
        if keyword in c and c[keyword] != a.get(keyword, False if keyword == "nullable" else None)
    ]
    if c.get("type") == "object":
        if c.get("additionalProperties") is False and a.get("additionalProperties") is not False:
            problems.append(f"{where}: additionalProperties false missing in the app")
        if "properties" in c and c["properties"] and a.get("properties"):
            if set(c.get("required", [])) != set(a.get("required", [])):
                problems.append(f"{where}: required {sorted(c.get('required', []))} != {sorted(a.get('required', []))}")
            if set(c["properties"]) != set(a["properties"]):
                problems.append(f"{where}: properties {sorted(c['properties'])} != {sorted(a['properties'])}")
            for name in set(c["properties"]) & set(a["properties"]):
                problems += _compare(contract, c["properties"][name], app, a["properties"][name], f"{where}.{name}")
        elif c.get("properties"):
            problems.append(f"{where}: the app documents no properties")
    return problems


@pytest.fixture(scope="module")
async def served(client: AsyncTestClient[Any]) -> Doc:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return Doc(response.json())


@pytest.fixture(scope="module")
def written() -> Doc:
    return Doc(_load(CONTRACTS / "api" / "ingest.openapi.yaml"))


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_the_served_openapi_has_the_contract_paths_and_headers(served: Doc, written: Doc, path: str) -> None:
    assert "post" in served.doc["paths"][path]
    assert "post" in written.doc["paths"][path]
    # Served as ASGI handlers, described by declarations (ingest/_openapi.py): the description
    # must carry the bearer security and only the method the route serves.
    assert served.operation(path).get("security") == [{"bearerAuth": []}]
    assert set(served.doc["paths"][path]) - {"parameters", "summary", "description"} == {"post"}
    app_headers, contract_headers = served.headers(path), written.headers(path)
    assert set(contract_headers) == {"Idempotency-Key", "X-Correlation-Id"}
    assert set(contract_headers) <= set(app_headers)
    assert app_headers["Idempotency-Key"]["required"] is True
    assert app_headers["X-Correlation-Id"].get("required", False) is False
    for name in contract_headers:
        c_schema = written.schema(contract_headers[name]["schema"])
        a_schema = served.schema(app_headers[name]["schema"])
        for keyword in ("minLength", "maxLength", "pattern"):
            assert c_schema.get(keyword) == a_schema.get(keyword), (name, keyword)


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_the_served_request_body_schema_agrees_with_the_contract(served: Doc, written: Doc, path: str) -> None:
    contract_body, app_body = written.body(path), served.body(path)
    assert contract_body["properties"]["patient"]  # the comparison below walks into patient
    assert _compare(written, contract_body, served, app_body, path) == []


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_the_served_responses_include_every_status_code_of_the_contract(
    served: Doc, written: Doc, path: str
) -> None:
    assert written.statuses(path) == {"202", "400", "401", "403", "409", "413", "503"}
    assert written.statuses(path) <= served.statuses(path)
    for status in written.statuses(path) - {"202"}:
        assert "application/problem+json" in served.resolve(served.operation(path)["responses"][status])["content"]
    accepted = served.resolve(served.operation(path)["responses"]["202"])["content"]["application/json"]["schema"]
    assert {"record_id", "correlation_id", "status"} <= set(served.schema(accepted)["properties"])


# -- every route's documented answers -------------------------------------------------------------

ERRORS = {"400", "401", "403", "404", "409", "413", "503"}
# Every route the app serves and the statuses it can answer with. A new route, or a status a
# route gains, is added here on purpose: the document must say what clients can get.
ANSWERS: dict[tuple[str, str], set[str]] = {
    ("/healthz", "get"): {"200"},
    ("/health/detailed", "get"): {"200", "503"},
    ("/metrics", "get"): {"200"},
    ("/v1/ingest", "post"): {"202", "400", "401", "403", "409", "413", "503"},
    ("/v2/ingest", "post"): {"202", "400", "401", "403", "409", "413", "503"},
    ("/tokenize", "post"): {"200", "400", "401", "403", "413"},
    ("/tokenize/linkage", "post"): {"200", "400", "401", "403", "413"},
    ("/tokenize/batch", "post"): {"200", "400", "401", "403", "413"},
    ("/admin/jobs/replay", "post"): {"202", "400", "401", "403", "413", "503"},
    ("/admin/jobs/verify", "post"): {"202", "400", "401", "403", "413", "503"},
    ("/admin/jobs/reconcile", "post"): {"202", "400", "401", "403", "413", "503"},
    ("/admin/jobs/derive", "post"): {"202", "400", "401", "403", "413", "503"},
    ("/admin/jobs/{job_id}", "get"): {"200", "400", "401", "403", "404", "503"},
    ("/admin/dlq", "get"): {"200", "400", "401", "403", "503"},
    ("/admin/dlq/report", "get"): {"200", "400", "401", "403", "503"},
    ("/admin/dlq/{entry_id}", "get"): {"200", "400", "401", "403", "404", "503"},
    ("/admin/dlq/{entry_id}/reprocess", "post"): {"202", "400", "401", "403", "404", "409", "503"},
    ("/admin/dlq/{entry_id}/resolve", "post"): {"200", "400", "401", "403", "404", "413", "503"},
    ("/records/{record_id}", "get"): {"200", "400", "401", "403", "404", "503"},
    ("/patients/{patient_token}/records", "get"): {"200", "400", "401", "403", "503"},
    ("/records/{record_id}/linkage", "get"): {"200", "400", "401", "403", "404", "503"},
    ("/persons/{person_id}/records", "get"): {"200", "400", "401", "403", "404", "503"},
    ("/sources/{source}/records", "get"): {"200", "400", "401", "403", "503"},
    ("/v1/records/{record_id}/status", "get"): {"200", "400", "401", "403", "404", "503"},
}


@pytest.fixture(scope="module")
async def served_all(stack_env: dict[str, str]) -> Doc:
    """The document of an app with every HTTP role (the background roles add no routes)."""
    roles = frozenset({Role.INGEST, Role.TOKENIZER, Role.ADMIN, Role.QUERY})
    async with running_app(make_settings(stack_env), roles) as client:
        response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return Doc(response.json())


def test_every_route_documents_the_statuses_it_can_answer(served_all: Doc) -> None:
    documented = {key: set(op["responses"]) for key, op in served_all.operations().items()}
    assert documented == ANSWERS


def test_every_error_answer_is_documented_as_problem_json_with_the_problem_schema(served_all: Doc) -> None:
    problem = served_all.schema({"$ref": "#/components/schemas/Problem"})
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    checked = 0
    for (path, method), op in served_all.operations().items():
        for status, response in op["responses"].items():
            if status not in ERRORS or path == "/health/detailed":  # its 503 is the health body itself
                continue
            content = served_all.resolve(response)["content"]
            assert set(content) == {"application/problem+json"}, (path, method, status)
            assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
            checked += 1
    assert checked > 40


def test_every_guarded_route_documents_401_and_403(served_all: Doc) -> None:
    guarded = {key for key, op in served_all.operations().items() if op.get("security")}
    assert guarded == {key for key, statuses in ANSWERS.items() if "401" in statuses}
    for key in guarded:
        assert {"401", "403"} <= set(served_all.operations()[key]["responses"]), key


def test_the_served_problem_schema_agrees_with_the_written_one(served_all: Doc, written: Doc) -> None:
    ref = {"$ref": "#/components/schemas/Problem"}
    assert _compare(written, ref, served_all, ref, "Problem") == []


def test_the_served_tokenize_schemas_agree_with_the_tokenizer_contract(served_all: Doc) -> None:
    contract = Doc(_load(CONTRACTS / "api" / "tokenizer.openapi.yaml"))
    assert contract.statuses("/tokenize") <= served_all.statuses("/tokenize")
    assert served_all.operation("/tokenize").get("security") == [{"bearerAuth": []}]
    assert contract.body("/tokenize")["properties"]["dob"]["format"] == "date"  # the walk below checks it
    assert _compare(contract, contract.body("/tokenize"), served_all, served_all.body("/tokenize"), "request") == []
    # The answer: its field, type and length (its closedness is what the server sends, not a rule
    # it enforces on anyone; Litestar does not document it for answers).
    c_ok = {k: v for k, v in contract.answer("/tokenize", "200").items() if k != "additionalProperties"}
    assert _compare(contract, c_ok, served_all, served_all.answer("/tokenize", "200"), "200") == []
    # The extension: the same request, and the answer's fields as written.
    assert contract.statuses("/tokenize/linkage") <= served_all.statuses("/tokenize/linkage")
    assert _compare(contract, contract.body("/tokenize/linkage"), served_all, served_all.body("/tokenize/linkage"),
                    "request") == []
    linkage_ok = {k: v for k, v in contract.answer("/tokenize/linkage", "200").items() if k != "additionalProperties"}
    assert set(linkage_ok["required"]) == set(served_all.answer("/tokenize/linkage", "200")["required"])
    # The batch: the same items, at most as many as written.
    assert contract.statuses("/tokenize/batch") <= served_all.statuses("/tokenize/batch")
    assert _compare(contract, contract.body("/tokenize/batch"), served_all, served_all.body("/tokenize/batch"),
                    "request") == []


# -- the written contract extends the original compatibly --------------------------------------


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_the_written_contract_extends_the_original_compatibly(written: Doc, path: str) -> None:
    original = Doc(_load(ORIGINALS / "api" / "ingest-openapi.yaml"))
    # Every original status code and header parameter is still there, none newly required.
    assert original.statuses(path) <= written.statuses(path)
    o_headers, w_headers = original.headers(path), written.headers(path)
    assert set(o_headers) == set(w_headers)
    for name, param in w_headers.items():
        assert param.get("required", False) == o_headers[name].get("required", False)
    # The request body: same fields, same required set, every original enum value still accepted.
    o_body, w_body = original.body(path), written.body(path)

    def walk(o: dict[str, Any], w: dict[str, Any], where: str) -> None:
        assert o.get("type") == w.get("type"), where
        assert set(o.get("enum", [])) <= set(w.get("enum", o.get("enum", []))), where
        assert o.get("nullable", False) == w.get("nullable", False), where
        if o.get("type") == "object":
            assert o.get("additionalProperties", True) == w.get("additionalProperties", True), where
            assert set(o.get("required", [])) == set(w.get("required", [])), where
            assert set(o.get("properties", {})) == set(w.get("properties", {})), where
            for name, sub in o.get("properties", {}).items():
                walk(original.schema(sub), written.schema(w["properties"][name]), f"{where}.{name}")

    walk(o_body, w_body, path)
    # The 202 body keeps every original field and its required set.
    o_ok = original.schema(original.resolve(original.operation(path)["responses"]["202"])["content"]
                           ["application/json"]["schema"])
    w_ok = written.schema(written.resolve(written.operation(path)["responses"]["202"])["content"]
                          ["application/json"]["schema"])
    assert set(o_ok["properties"]) <= set(w_ok["properties"])
    assert set(o_ok["required"]) == set(w_ok["required"])


# -- the original runbook's requests ----------------------------------------------------------


def _runbook_requests() -> list[tuple[str, str, dict[str, Any]]]:
    """(path, Idempotency-Key as written, body) of every curl to the ingest API in the runbook."""
    found = []
    for command in re.split(r"\bcurl\b", RUNBOOK.read_text())[1:]:
        path = re.search(r"http://localhost:8080(/v[12]/ingest)", command)
        if path is None:
            continue
        key = re.search(r'Idempotency-Key: ([^"]+)"', command)
        body = re.search(r"-d '(.*?)'", command, re.DOTALL)
        assert key is not None
        assert body is not None
        found.append((path.group(1), key.group(1), json.loads(body.group(1))))
    return found


async def test_the_runbook_example_requests_behave_as_the_runbook_says(client: AsyncTestClient[Any]) -> None:
    requests = _runbook_requests()
    assert len(requests) == 9
    shared_key = f"runbook-idk-{uuid.uuid4()}"  # the runbook's $IDK
    results = []
    for path, key, body in requests:
        sent_key = shared_key if key == "$IDK" else key.replace("$(date +%s)", uuid.uuid4().hex)
        r = await client.post(path, json=body, headers={**DEV, "Idempotency-Key": sent_key})
        results.append((key, body, r))

    for key, body, r in results:
        if body.get("record_kind") == "bad_kind":
            assert r.status_code == 400, r.text  # Milestone 6 step 6: invalid record_kind
            assert r.json()["errors"][0]["field"] == "record_kind"
        elif key != "$IDK":
            assert r.status_code == 202, (body, r.text)
            assert uuid.UUID(r.json()["record_id"])
    # Milestone 6 step 5: the first two match, the third (dob changed) is 409.
    idk = [r for key, _, r in results if key == "$IDK"]
    assert [r.status_code for r in idk] == [202, 202, 409]
    assert idk[0].json()["record_id"] == idk[1].json()["record_id"]


# -- the record journey: an extension, served as written --------------------------------------

STATUS = "/v1/records/{record_id}/status"


def test_the_record_status_extension_is_served_as_the_contract_writes_it(served_all: Doc, written: Doc) -> None:
    original = Doc(_load(ORIGINALS / "api" / "ingest-openapi.yaml"))
    assert set(written.doc["paths"]) - set(original.doc["paths"]) == {STATUS}
    assert written.statuses(STATUS, "get") == served_all.statuses(STATUS, "get")
    assert served_all.operation(STATUS, "get").get("security") == [{"bearerAuth": []}]

    def answer(doc: Doc) -> dict[str, Any]:
        content = doc.resolve(doc.operation(STATUS, "get")["responses"]["200"])["content"]
        return doc.schema(content["application/json"]["schema"])

    c, a = answer(written), answer(served_all)
    assert _compare(written, c, served_all, a, "status") == []
    lists = [name for name, prop in c["properties"].items() if written.schema(prop).get("type") == "array"]
    assert lists == ["outbox", "attempts", "dead_letters"]
    for name in lists:  # _compare stops at arrays: their items too
        c_items = written.schema(c["properties"][name])["items"]
        a_items = served_all.schema(a["properties"][name])["items"]
        assert _compare(written, c_items, served_all, a_items, f"status.{name}[]") == []


# -- GraphQL: served as written, and the original's schema still holds --------------------------

GRAPHQL = CONTRACTS / "graphql" / "schema.graphql"


@pytest.fixture(scope="module")
async def served_graphql(stack_env: dict[str, str]) -> str:
    """The query role's GraphQL schema, by introspection (on in local mode), printed."""
    async with running_app(make_settings(stack_env, ENV="local"), frozenset({Role.QUERY})) as client:
        r = await client.post("/graphql", json={"query": get_introspection_query(descriptions=True)}, headers=DEV)
    assert r.status_code == 200, r.text
    return print_schema(lexicographic_sort_schema(build_client_schema(r.json()["data"])))


def test_the_served_graphql_schema_is_the_written_one(served_graphql: str) -> None:
    assert served_graphql == print_schema(lexicographic_sort_schema(build_schema(GRAPHQL.read_text())))


def test_the_written_graphql_schema_extends_the_original_compatibly() -> None:
    original = build_schema((ORIGINALS / "graphql" / "schema.graphql").read_text())
    ours = build_schema(GRAPHQL.read_text())
    checked = 0
    for name, o_type in original.type_map.items():
        if name.startswith("__") or not isinstance(o_type, GraphQLObjectType):
            continue
        w_type = ours.get_type(name)
        assert isinstance(w_type, GraphQLObjectType), name
        for field_name, o_field in o_type.fields.items():
            w_field = w_type.fields[field_name]
            assert str(w_field.type) == str(o_field.type), (name, field_name)  # same type, same nullability
            for arg, o_arg in o_field.args.items():
                assert str(w_field.args[arg].type) == str(o_arg.type), (name, field_name, arg)
            for arg in set(w_field.args) - set(o_field.args):  # an added argument must be optional
                added = w_field.args[arg]
                assert not isinstance(added.type, GraphQLNonNull) or added.default_value is not None, arg
            checked += 1
    assert checked == 9  # Query's two fields, Patient's two, Encounter's five
    assert "Always null" in (ours.get_type("Patient").fields["dob"].description or "")  # type: ignore[union-attr]
