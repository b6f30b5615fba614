"""PII canaries (tests/data/phi-canaries.json) planted in v1 and v2 records, a rejected
request and a conflict: the raw object in S3 is the only place allowed to hold them.

Everything else the flow produces is collected and searched: every log line of the
process (all roles, so publisher, normalizer and tokenizer too), HTTP response bodies and
headers, outbox payloads and headers, stored idempotency responses, manifest rows,
canonical rows, the processing ledger, /metrics and /health/detailed, and the read side: the
record journey (/v1/records/{id}/status), the REST pages and GraphQL.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from exchange.roles import ALL_ROLES
from exchange.settings import Settings
from tests.integration.ingest._support import new_key, post_ingest, s3_get
from tests.support.app import DEV, LogCapture, make_settings, running_app
from tests.support.db import eventually, fetch, fetchval

pytestmark = pytest.mark.timeout(300)

_REQUEST_LOGGER = "exchange.http.access"


def _patient(version: int, canaries: dict[str, str]) -> dict[str, str]:
    first, last = ("first_name", "last_name") if version == 1 else ("given_name", "family_name")
    return {first: canaries["given_name"], last: canaries["family_name"], "dob": canaries["dob"],
            "ssn": canaries["ssn"]}


def _body(version: int, source: str, canaries: dict[str, str], **overrides: Any) -> dict[str, Any]:
    identifiers = {k: v for k, v in canaries.items() if k not in ("given_name", "family_name", "dob", "ssn")}
    body: dict[str, Any] = {"source": source, "patient": _patient(version, canaries),
                            "payload": {**identifiers, "visit": {"notes": f"seen at {canaries['street']}"}}}
    if version == 1:
        body["record_type"] = "encounter"
    else:
        body.update(record_kind="lab_result", schema_hint="partnerB.v1")
    body.update(overrides)
    return body


def _leaks(text: str, canaries: dict[str, str]) -> list[str]:
    """Canary names found in ``text``. All-digit canaries (the ZIP) must stand alone, so a
    latency like 0.0093127 or a hex digest does not count as a leak."""
    found = []
    for name, value in canaries.items():
        if value.isdigit():
            if re.search(rf"(?<![0-9A-Za-z.]){re.escape(value)}(?![0-9A-Za-z])", text):
                found.append(name)
        elif value in text:
            found.append(name)
    return found


async def test_no_canary_leaves_the_raw_object(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, canaries: dict[str, str]
) -> None:
    settings: Settings = make_settings(stack_env, **isolated_kafka)
    dsn = settings.database.dsn
    source = f"privacy-{unique}"
    logs = LogCapture()
    exposed: dict[str, str] = {}  # where -> text that must hold no canary
    responses: list[Any] = []

    async with running_app(settings, ALL_ROLES, logs=logs) as client:

        async def send(version: int, body: Any, key: str) -> Any:
            response = await post_ingest(client, version, body, key=key, auth=DEV)
            responses.append(response)
            return response

        key_v1, key_v2 = new_key("pii-v1"), new_key("pii-v2")
        accepted_v1 = await send(1, _body(1, source, canaries), key_v1)
        accepted_v2 = await send(2, _body(2, source, canaries), key_v2)
        assert (accepted_v1.status_code, accepted_v2.status_code) == (202, 202), (accepted_v1.text, accepted_v2.text)
        replay = await send(1, _body(1, source, canaries), key_v1)
        assert replay.headers["idempotent-replayed"] == "true"

        # Conflicts and rejections whose bodies carry the canaries, some in the failing field.
        conflict = await send(1, _body(1, source, canaries, payload={"mrn": canaries["mrn"], "changed": True}), key_v1)
        assert conflict.status_code == 409
        invalid = [
            (1, _body(1, source, canaries, record_type=canaries["mrn"])),
            (1, _body(1, canaries["email"], canaries)),
            (1, _body(1, source, canaries, patient={**_patient(1, canaries), "phone": canaries["phone"]})),
            (1, _body(1, source, canaries, patient={**_patient(1, canaries), "dob": canaries["admission_date"] + "T"})),
            (1, _body(1, source, canaries, patient={**_patient(1, canaries), "ssn": canaries["ssn"] * 10})),
            (2, _body(2, source, canaries, schema_hint=canaries["member_id"])),
            (2, _body(2, source, canaries, record_kind=canaries["other_id"])),
            (2, _body(2, source, canaries, payload=[canaries["vin"]])),
            (2, json.dumps(_body(2, source, canaries)).encode()[:-7]),  # truncated JSON
            (2, json.dumps(_body(2, source, canaries)).encode() + b"\xff"),  # invalid UTF-8
        ]
        for version, body in invalid:
            rejected = await send(version, body, new_key("pii-bad"))
            assert rejected.status_code == 400, rejected.text

        record_ids = [accepted_v1.json()["record_id"], accepted_v2.json()["record_id"]]

        async def canonical() -> bool:
            n = await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE record_id = ANY($1::uuid[])",
                               [uuid.UUID(r) for r in record_ids])
            return bool(n == 2)

        await eventually(canonical, timeout=60)

        # The read side: the record journey, the REST pages and GraphQL over the same records.
        for record_id in record_ids:
            status = await client.get(f"/v1/records/{record_id}/status", headers=DEV)
            assert status.status_code == 200, status.text
            exposed[f"status {record_id}"] = status.text
        page = await client.get(f"/sources/{source}/records", headers=DEV)
        assert len(page.json()["records"]) == 2
        token = page.json()["records"][0]["patient_token"]
        by_token = await client.get(f"/patients/{token}/records", headers=DEV)
        graphql = await client.post("/graphql", headers=DEV, json={"query": """
            query($s: String!, $t: ID!, $id: ID!) {
              records(source: $s) { records { recordId source patientToken person { personId recordCount } } }
              patient(patientToken: $t) { patientToken dob recordCount }
              encounters(patientToken: $t) { encounterId facilityId admitTime dischargeTime }
              recordStatus(recordId: $id) { stage client attempts { errorType errorStage } }
            }""", "variables": {"s": source, "t": token, "id": record_ids[0]}})
        assert "errors" not in graphql.json(), graphql.text
        exposed["/sources/{source}/records"] = page.text
        exposed["/patients/{token}/records"] = by_token.text
        exposed["/graphql"] = graphql.text

        metrics = await client.get("/metrics")
        health = await client.get("/health/detailed")
        exposed["/metrics"] = metrics.text
        exposed["/health/detailed"] = health.text + json.dumps(dict(health.headers))

    # The canaries really were planted: the raw objects hold them.
    for record_id in record_ids:
        raw = (await s3_get(settings, f"{source}/{record_id}.json")).decode()
        assert {"given_name", "family_name", "ssn", "mrn", "email"} <= set(_leaks(raw, canaries))

    for i, response in enumerate(responses):
        exposed[f"response {i} ({response.status_code})"] = response.text + json.dumps(dict(response.headers))
    ids = [uuid.UUID(r) for r in record_ids]
    queries = {
        "outbox_events": ("SELECT topic, key, payload::text, headers::text, last_error FROM outbox_events "
                          "WHERE key = ANY($1::text[])", record_ids),
        "idempotency_keys": ("SELECT * FROM idempotency_keys WHERE record_id = ANY($1::uuid[])", ids),
        "raw_object_manifest": ("SELECT * FROM raw_object_manifest WHERE record_id = ANY($1::uuid[])", ids),
        "canonical_records": ("SELECT record_id, source, raw_object_key, normalized::text, correlation_id, "
                              "record_kind, schema_hint FROM canonical_records WHERE record_id = ANY($1::uuid[])", ids),
        "processing_stage_state": ("SELECT * FROM processing_stage_state WHERE record_id = ANY($1::uuid[])", ids),
        "processing_attempts": ("SELECT * FROM processing_attempts WHERE record_id = ANY($1::uuid[])", ids),
    }
    for table, (sql, arg) in queries.items():
        rows = await fetch(dsn, sql, arg)
        assert rows or table.startswith("processing"), f"no {table} rows to inspect"
        exposed[table] = "\n".join(repr(dict(row)) for row in rows)
    assert len(await fetch(dsn, queries["outbox_events"][0], record_ids)) == 2
    exposed["logs"] = logs.text()

    leaks = {where: found for where, text in exposed.items() if (found := _leaks(text, canaries))}
    assert leaks == {}, f"canary values found outside the raw object: {leaks}"

    _assert_log_lines(logs.text(), responses)


def _assert_log_lines(text: str, responses: list[Any]) -> None:
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    assert lines
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= set(line)
    access = [line for line in lines if line["logger"] == _REQUEST_LOGGER]
    ingest = [line for line in access if line["route"] in ("/v1/ingest", "/v2/ingest")]
    assert len(ingest) == len(responses)
    for line in access:
        assert line["method"] in ("GET", "POST")
        assert isinstance(line["status"], int)
        assert isinstance(line["latency_ms"], (int, float))
        assert line["latency_ms"] >= 0
        assert line["correlation_id"]
    # One access line per request, carrying the id the response echoed, with its status.
    by_cid = {line["correlation_id"]: line for line in ingest}
    for response in responses:
        line = by_cid[response.headers["x-correlation-id"]]
        assert line["status"] == response.status_code
        assert line["method"] == "POST"
