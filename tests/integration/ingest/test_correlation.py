"""X-Correlation-Id: honoured when it matches ^[A-Za-z0-9._:-]{8,128}$, else a fresh UUID;
echoed in the header and the body, stored in the event, on every log line of the request."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from exchange.roles import Role
from exchange.settings import Settings
from tests.integration.ingest._support import as_json, body_for, new_key, outbox_rows, post_ingest
from tests.support.app import DEV, LogCapture, running_app
from tests.support.db import fetchval

pytestmark = pytest.mark.timeout(300)

# Lines that are not the server handling a request: a background task, and the test client itself.
_NOT_THE_REQUEST = ("exchange.ingest.janitor", "httpx")


@pytest.fixture(scope="module")
def logs() -> LogCapture:
    return LogCapture()


@pytest.fixture(scope="module")
async def client(app_settings: Settings, logs: LogCapture) -> AsyncIterator[AsyncTestClient[Any]]:
    async with running_app(app_settings, frozenset({Role.INGEST}), logs=logs) as c:
        yield c


async def _post_logged(
    client: AsyncTestClient[Any], logs: LogCapture, version: int, body: Any, key: str | None, cid: Any
) -> tuple[Any, list[dict[str, Any]]]:
    """The response and the log lines written while it was handled (requests run one at a time)."""
    start = len(logs.text())
    headers = {} if cid is None else {"X-Correlation-Id": cid}
    response = await post_ingest(client, version, body, key=key, auth=DEV, headers=headers)
    lines = [json.loads(line) for line in logs.text()[start:].splitlines() if line.strip()]
    return response, [line for line in lines if line["logger"] not in _NOT_THE_REQUEST]


def _assert_every_line_carries(lines: list[dict[str, Any]], cid: str) -> None:
    assert any(line["logger"] == "exchange.http.access" for line in lines), lines
    for line in lines:
        assert line.get("correlation_id") == cid, line


GOOD = [
    "abcdefgh",
    "A" * 128,
    "req-2026.11.23:trace_id-0001",
    "0123456789",
    "...:::---___",
    str(uuid.uuid4()),
]
BAD = [
    "short7c",
    "A" * 129,
    "has space 1234",
    "slash/not/allowed",
    "semi;colon-12345",
    "quote\"d-123456",
    "tab\tinside-1234",
    "",
    "ünïcode-12345".encode(),
    "<script>alert(1)</script>",
]


@pytest.mark.parametrize("cid", GOOD)
@pytest.mark.parametrize("version", [1, 2])
async def test_an_acceptable_correlation_id_is_echoed_stored_and_logged(
    client: AsyncTestClient[Any], logs: LogCapture, app_settings: Settings, unique: str, version: int, cid: str
) -> None:
    response, lines = await _post_logged(client, logs, version, body_for(version, f"cid-{unique}"),
                                         new_key("cid"), cid)

    assert response.status_code == 202, response.text
    assert response.headers["x-correlation-id"] == cid
    assert response.json()["correlation_id"] == cid
    [outbox] = await outbox_rows(app_settings, response.json()["record_id"])
    assert as_json(outbox["payload"])["correlation_id"] == cid
    assert as_json(outbox["headers"])["correlation_id"] == cid
    _assert_every_line_carries(lines, cid)


@pytest.mark.parametrize("cid", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
async def test_an_unacceptable_correlation_id_is_replaced_by_a_uuid(
    client: AsyncTestClient[Any], logs: LogCapture, app_settings: Settings, unique: str, cid: str | bytes
) -> None:
    response, lines = await _post_logged(client, logs, 1, body_for(1, f"cid-{unique}"), new_key("cid"), cid)

    assert response.status_code == 202, response.text
    echoed = response.headers["x-correlation-id"]
    assert str(uuid.UUID(echoed)) == echoed
    assert response.json()["correlation_id"] == echoed
    [outbox] = await outbox_rows(app_settings, response.json()["record_id"])
    assert as_json(outbox["payload"])["correlation_id"] == echoed
    submitted = cid.decode("latin-1") if isinstance(cid, bytes) else cid
    if submitted:
        assert submitted not in logs.text()
    _assert_every_line_carries(lines, echoed)


async def test_a_missing_correlation_id_gets_a_fresh_uuid_per_request(
    client: AsyncTestClient[Any], logs: LogCapture, unique: str
) -> None:
    first, _ = await _post_logged(client, logs, 1, body_for(1, f"cid-{unique}"), new_key("cid"), None)
    second, _ = await _post_logged(client, logs, 1, body_for(1, f"cid-{unique}"), new_key("cid"), None)
    ids = {first.headers["x-correlation-id"], second.headers["x-correlation-id"]}
    assert len(ids) == 2
    for cid in ids:
        assert uuid.UUID(cid).version == 4


@pytest.mark.parametrize(
    ("case", "status"),
    [("invalid body", 400), ("missing key", 400), ("no token", 401), ("conflict", 409)],
)
async def test_error_responses_echo_the_correlation_id_too(
    client: AsyncTestClient[Any], logs: LogCapture, unique: str, case: str, status: int
) -> None:
    source, key, cid = f"cid-err-{unique}", new_key("cid-err"), f"err-{unique}-{case.replace(' ', '-')}"
    body: Any = body_for(1, source)
    if case == "invalid body":
        body = body_for(1, source, record_type="nope")
    if case == "conflict":
        assert (await post_ingest(client, 1, body, key=key, auth=DEV)).status_code == 202
        body = body_for(1, source, payload={"changed": True})
    start = len(logs.text())
    response = await post_ingest(
        client, 1, body, key=None if case == "missing key" else key, auth={} if case == "no token" else DEV,
        headers={"X-Correlation-Id": cid},
    )
    lines = [json.loads(line) for line in logs.text()[start:].splitlines() if line.strip()]

    assert response.status_code == status, response.text
    assert response.headers["x-correlation-id"] == cid
    assert response.json()["correlation_id"] == cid
    access = [line for line in lines if line["logger"] == "exchange.http.access"]
    assert [(a["correlation_id"], a["status"], a["route"]) for a in access] == [(cid, status, "/v1/ingest")]


async def test_a_replay_returns_the_original_body_while_the_header_echoes_this_request(
    client: AsyncTestClient[Any], logs: LogCapture, app_settings: Settings, unique: str
) -> None:
    body, key = body_for(2, f"cid-replay-{unique}"), new_key("cid-replay")
    first, _ = await _post_logged(client, logs, 2, body, key, f"first-{unique}")
    again, lines = await _post_logged(client, logs, 2, body, key, f"again-{unique}")

    assert again.json() == first.json()
    assert again.json()["correlation_id"] == f"first-{unique}"
    assert again.headers["x-correlation-id"] == f"again-{unique}"
    assert again.headers["idempotent-replayed"] == "true"
    _assert_every_line_carries(lines, f"again-{unique}")
    stored = await fetchval(
        app_settings.database.dsn, "SELECT payload->>'correlation_id' FROM outbox_events WHERE key = $1",
        first.json()["record_id"],
    )
    assert stored == f"first-{unique}"
