"""Every way a request can be wrong → the right 4xx as problem+json, no echo, nothing written.

"Nothing written" is checked where it would land: no idempotency, outbox or manifest row
created since the request started (by the database clock), and no raw object under the
source's prefix.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from exchange.roles import Role
from exchange.settings import Settings
from tests.integration.ingest._support import PROBLEM_JSON, body_for, new_key, post_ingest, s3_keys
from tests.support.app import DEV, TEST_JWT_SECRET, bearer, make_settings, running_app
from tests.support.db import fetch, fetchval
from tests.support.process import ServeProcess

pytestmark = pytest.mark.timeout(300)

MiB = 1024 * 1024
MARK = "Qzxbadvalue"  # a submitted value no error message may contain


@pytest.fixture(scope="module", params=["test", "production"])
def test_env_settings(stack_env: dict[str, str], request: pytest.FixtureRequest) -> Settings:
    """Settings for an environment other than ENV=local (where `Bearer dev` must not work)."""
    return make_settings(stack_env, ENV=request.param, TOKENIZER_HMAC_KEY="integration-test-hmac-key-0123456789abcdef")


@pytest.fixture(scope="module")
async def test_env_client(test_env_settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with running_app(test_env_settings, frozenset({Role.INGEST})) as c:
        yield c


# -- what a bad request may leave behind: nothing -------------------------------------------


async def _db_now(settings: Settings) -> dt.datetime:
    now: dt.datetime = await fetchval(settings.database.dsn, "SELECT clock_timestamp()")
    return now


async def _rows_since(settings: Settings, since: dt.datetime) -> tuple[int, int, int]:
    row = await fetch(
        settings.database.dsn,
        "SELECT (SELECT count(*) FROM idempotency_keys WHERE created_at >= $1) AS idem,"
        " (SELECT count(*) FROM outbox_events WHERE created_at >= $1) AS outbox,"
        " (SELECT count(*) FROM raw_object_manifest WHERE created_at >= $1) AS manifest",
        since,
    )
    return row[0]["idem"], row[0]["outbox"], row[0]["manifest"]


async def _assert_nothing_written(settings: Settings, since: dt.datetime, *prefixes: str) -> None:
    assert await _rows_since(settings, since) == (0, 0, 0)
    for prefix in prefixes:
        assert await s3_keys(settings, f"{prefix}/") == ()


def _assert_problem(response: Any, status: int, *, field: str | None, hidden: tuple[str, ...]) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("https://exchange.dev/problems/")
    assert problem["title"]
    assert problem["detail"]
    assert problem["correlation_id"] == response.headers["x-correlation-id"]
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]], problem
    everything = response.text + json.dumps(dict(response.headers))
    for value in hidden:
        assert value not in everything, f"{value!r} echoed"
    return problem


# -- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    version: int
    body: Callable[[str], Any]  # source -> dict (sent as JSON) or bytes
    status: int = 400
    field: str | None = None
    hidden: tuple[str, ...] = ()  # submitted values the response must not contain
    key: Any = "default"  # "default" = a fresh valid key; None = no header; else the header value
    bad_source: str | None = None  # also check no object lands under this prefix


def _drop(version: int, name: str) -> Callable[[str], Any]:
    def build(source: str) -> Any:
        body = body_for(version, source)
        if "." in name:
            outer, inner = name.split(".")
            body[outer] = {k: v for k, v in body[outer].items() if k != inner}
        else:
            del body[name]
        return body

    return build


def _set(version: int, name: str, value: Any) -> Callable[[str], Any]:
    def build(source: str) -> Any:
        body = body_for(version, source)
        if "." in name:
            outer, inner = name.split(".")
            body[outer] = {**body[outer], inner: value}
        else:
            body[name] = value
        return body

    return build


def _nested(version: int, depth: int) -> Callable[[str], Any]:
    """A payload nested ``depth`` levels (written as bytes: json.dumps itself stops at ~1000)."""

    def build(source: str) -> bytes:
        raw = json.dumps(body_for(version, source, payload={"x": MARK})).encode()
        return raw.replace(json.dumps(MARK).encode(), b"[" * depth + json.dumps(MARK).encode() + b"]" * depth)

    return build


def _raw(data: bytes) -> Callable[[str], Any]:
    return lambda source: data


REQUIRED = {
    1: ["source", "record_type", "patient", "payload", "patient.first_name", "patient.last_name", "patient.dob"],
    2: ["source", "record_kind", "schema_hint", "patient", "payload", "patient.given_name", "patient.family_name",
        "patient.dob"],
}
FIRST_NAME = {1: "patient.first_name", 2: "patient.given_name"}
BAD_SOURCES = ["../x", "A/B", "", "s" * 65, "a..b"]
_IN_TWO_DAYS = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()


def _cases() -> list[Any]:
    cases: list[Any] = []

    def add(case_id: str, case: Case) -> None:
        cases.append(pytest.param(case, id=case_id))

    for version in (1, 2):
        for name in REQUIRED[version]:
            add(f"v{version}-missing-{name}", Case(version, _drop(version, name), field=name))
        # Not a date; then dates the normalizer's quality gate would dead-letter (implausible).
        for value in ("1990-13-01", "01/02/1990", "1849-12-31", "0001-01-01", "9999-12-31", _IN_TWO_DAYS):
            add(f"v{version}-dob-{value}", Case(version, _set(version, "patient.dob", value), field="patient.dob",
                                                hidden=(value,)))
        for value in BAD_SOURCES:
            add(f"v{version}-source-{value[:8] or 'empty'}",
                Case(version, _set(version, "source", value), field="source", hidden=(value,) if value else (),
                     bad_source=value or None))
        add(f"v{version}-unknown-top-level-field",
            Case(version, _set(version, "nickname", MARK), field="nickname", hidden=(MARK,)))
        add(f"v{version}-unknown-patient-field",
            Case(version, _set(version, "patient.middle_name", MARK), field="patient.middle_name", hidden=(MARK,)))
        add(f"v{version}-payload-list", Case(version, _set(version, "payload", [MARK]), field="payload",
                                             hidden=(MARK,)))
        add(f"v{version}-payload-string", Case(version, _set(version, "payload", MARK), field="payload",
                                               hidden=(MARK,)))
        add(f"v{version}-blank-name", Case(version, _set(version, FIRST_NAME[version], " \t "),
                                           field=FIRST_NAME[version]))
        add(f"v{version}-body-list", Case(version, _raw(json.dumps([MARK]).encode()), hidden=(MARK,)))
        add(f"v{version}-body-string", Case(version, _raw(json.dumps(MARK).encode()), hidden=(MARK,)))
        add(f"v{version}-invalid-json", Case(version, _raw(b'{"source": "' + MARK.encode() + b'", oops}'),
                                             hidden=(MARK,)))
        add(f"v{version}-invalid-utf8", Case(version, _raw(b'{"source": "' + MARK.encode() + b'\xff\xfe"}'),
                                             hidden=(MARK,)))
        add(f"v{version}-empty-body", Case(version, _raw(b"")))
        add(f"v{version}-nested-too-deeply", Case(version, _nested(version, 5000), hidden=(MARK,)))
        add(f"v{version}-2MiB-body", Case(version, _set(version, "payload", {"blob": MARK + "x" * (2 * MiB)}),
                                          status=413, hidden=(MARK,)))
        add(f"v{version}-no-idempotency-key", Case(version, lambda s, v=version: body_for(v, s), key=None,
                                                   field="Idempotency-Key"))
        for key_id, key in (("7-chars", "Qzx7chr"), ("256-chars", "Q" * 256), ("space", "Qzx key with space"),
                            ("non-ascii", "Qzx-kéy-123".encode()), ("tab", "Qzx\tkey-1234")):
            shown = key.decode("latin-1") if isinstance(key, bytes) else key
            add(f"v{version}-key-{key_id}", Case(version, lambda s, v=version: body_for(v, s), key=key,
                                                 field="Idempotency-Key", hidden=(shown, shown[:5])))

    add("v1-record-type-wrong", Case(1, _set(1, "record_type", MARK), field="record_type", hidden=(MARK,)))
    add("v1-record-type-wrong-case", Case(1, _set(1, "record_type", "Encounter"), field="record_type",
                                          hidden=("Encounter",)))
    add("v2-record-kind-wrong", Case(2, _set(2, "record_kind", MARK), field="record_kind", hidden=(MARK,)))
    add("v2-schema-hint-unknown", Case(2, _set(2, "schema_hint", MARK), field="schema_hint", hidden=(MARK,)))
    add("v2-with-a-v1-field", Case(2, _set(2, "record_type", "claim"), field="record_type"))
    add("v1-with-v2-patient", Case(1, _set(1, "patient", {"given_name": "Sam", "family_name": "Lee",
                                                          "dob": "1990-01-01"}), field="patient.given_name"))
    return cases


@pytest.mark.parametrize("case", _cases())
async def test_an_invalid_request_is_a_problem_without_echo_and_writes_nothing(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str, case: Case
) -> None:
    source = f"val-{unique}"
    key = new_key("val") if case.key == "default" else case.key
    since = await _db_now(app_settings)

    response = await post_ingest(client, case.version, case.body(source), key=key, auth=DEV)

    _assert_problem(response, case.status, field=case.field, hidden=case.hidden)
    await _assert_nothing_written(app_settings, since, source, *([case.bad_source] if case.bad_source else []))


async def test_a_chunked_body_over_the_limit_is_413_from_a_real_server(
    stack_env: dict[str, str], app_settings: Settings, unique: str, tmp_path: Path
) -> None:
    # Through uvicorn for real chunked transfer (no Content-Length): the in-process test
    # transport reads the whole body before the app sees it.
    source = f"val-chunked-{unique}"
    raw = json.dumps(body_for(1, source, payload={"blob": MARK + "x" * (2 * MiB)})).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 64 * 1024):
            yield raw[start : start + 64 * 1024]

    server = ServeProcess({**stack_env, "JWT_SECRET": TEST_JWT_SECRET}, "ingest", tmp_path).start()
    try:
        await asyncio.to_thread(server.wait_healthy)
        since = await _db_now(app_settings)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            response = await http.post(
                "/v1/ingest", content=chunks(),
                headers={**DEV, "Idempotency-Key": new_key("chunked"), "Content-Type": "application/json"},
            )
    finally:
        await asyncio.to_thread(server.stop)

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    _assert_problem(response, 413, field=None, hidden=(MARK,))
    await _assert_nothing_written(app_settings, since, source)


async def test_a_body_just_under_the_limit_is_accepted(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str
) -> None:
    source = f"val-big-{unique}"
    body = body_for(1, source, payload={"blob": ""})
    filler = MiB - len(json.dumps(body).encode()) - 1
    raw = json.dumps(body_for(1, source, payload={"blob": "x" * filler})).encode()
    assert len(raw) == MiB - 1

    response = await post_ingest(client, 1, raw, key=new_key("big"), auth=DEV)

    assert response.status_code == 202, response.text[:500]


async def test_a_255_character_visible_ascii_key_is_accepted(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str
) -> None:
    key = (f"k-{unique}-" + "".join(chr(c) for c in range(0x21, 0x7F)) * 3)[:255]
    response = await post_ingest(client, 2, body_for(2, f"val-key-{unique}"), key=key, auth=DEV)
    assert response.status_code == 202, response.text


# -- authentication and authorization ---------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("no Authorization header", 401),
        ("a token that is not a JWT", 401),
        ("a JWT signed with another secret", 401),
        ("an expired JWT", 401),
        ("a non-ASCII bearer value", 401),
        ("a valid JWT without ingest:write", 403),
    ],
)
async def test_a_request_that_fails_auth_is_rejected_and_writes_nothing(
    client: AsyncTestClient[Any], app_settings: Settings, stack_env: dict[str, str], unique: str, case: str,
    status: int,
) -> None:
    other = make_settings(stack_env, JWT_SECRET="a-completely-different-secret-0123456789")
    auth: dict[str, Any] = {
        "no Authorization header": {},
        "a token that is not a JWT": {"Authorization": f"Bearer {MARK}"},
        "a JWT signed with another secret": bearer(other),
        "an expired JWT": bearer(app_settings, exp=1_000_000, iat=None),
        "a non-ASCII bearer value": {"Authorization": b"Bearer \xe9t\xe9"},
        "a valid JWT without ingest:write": bearer(app_settings, scopes="read tokenize"),
    }[case]
    source = f"auth-{unique}"
    since = await _db_now(app_settings)

    response = await post_ingest(client, 1, body_for(1, source), key=new_key("auth"), auth=auth)

    problem = _assert_problem(response, status, field=None, hidden=(MARK,))
    assert problem["type"].endswith("unauthorized" if status == 401 else "forbidden")
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    await _assert_nothing_written(app_settings, since, source)


async def test_bearer_dev_outside_env_local_is_401(
    test_env_client: AsyncTestClient[Any], test_env_settings: Settings, unique: str
) -> None:
    source = f"auth-dev-{unique}"
    since = await _db_now(test_env_settings)

    response = await post_ingest(test_env_client, 1, body_for(1, source), key=new_key("dev"), auth=DEV)

    _assert_problem(response, 401, field=None, hidden=())
    await _assert_nothing_written(test_env_settings, since, source)


@pytest.mark.parametrize("version", [1, 2])
async def test_a_valid_jwt_with_ingest_write_is_accepted_outside_env_local(
    test_env_client: AsyncTestClient[Any], test_env_settings: Settings, unique: str, version: int
) -> None:
    response = await post_ingest(
        test_env_client, version, body_for(version, f"auth-jwt-{unique}"), key=new_key("jwt"),
        auth=bearer(test_env_settings, sub=f"svc-{unique}"),
    )
    assert response.status_code == 202, response.text
    client_id = await fetchval(
        test_env_settings.database.dsn, "SELECT client_id FROM idempotency_keys WHERE record_id = $1::uuid",
        response.json()["record_id"],
    )
    assert client_id == f"svc-{unique}"



@pytest.mark.parametrize("path", ["/v1/ingest", "/v2/ingest"])
async def test_other_methods_on_an_ingest_route_are_405_and_options_says_what_is_allowed(
    client: AsyncTestClient[Any], path: str
) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = await client.request(method, path, headers=DEV)
        problem = _assert_problem(response, 405, field=None, hidden=())
        assert problem["type"].endswith("method-not-allowed")
        assert response.headers["allow"] == "POST, OPTIONS"
    response = await client.options(path)
    assert response.status_code == 204
    assert response.headers["allow"] == "POST, OPTIONS"
    assert response.content == b""


async def test_options_on_a_litestar_route_is_answered_too(client: AsyncTestClient[Any]) -> None:
    # The access log once named the route through a weak reference, which the handler
    # Litestar makes for OPTIONS does not allow: every OPTIONS request failed after its answer.
    response = await client.options("/healthz")
    assert response.status_code == 204
    assert "GET" in response.headers["allow"]
