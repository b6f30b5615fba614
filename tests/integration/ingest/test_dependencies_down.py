"""S3 or Postgres stopped (the real processes) → 503 naming the dependency, nothing written;
back up → the client's retry with the same Idempotency-Key is accepted as a new record.

These tests stop services of the session stack, so they always restart them (and wait
until they really work again) before returning.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from exchange.settings import Settings
from exchange_stack import Stack
from tests.integration.ingest._support import PROBLEM_JSON, body_for, new_key, post_ingest, written
from tests.support.app import DEV
from tests.support.db import fetchval

pytestmark = pytest.mark.timeout(300)


async def _retry_until_accepted(
    client: AsyncTestClient[Any], version: int, body: dict[str, Any], key: str, timeout: float = 60
) -> tuple[Any, int]:
    """What a client does after a 503: retry with the same key. Returns the 202 and the attempts it took."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        response = await post_ingest(client, version, body, key=key, auth=DEV)
        if response.status_code == 202:
            return response, attempts
        assert response.status_code == 503, response.text  # never a 500 or a 409 on the way back
        assert time.monotonic() < deadline, f"still 503 after {attempts} attempts: {response.text}"
        await asyncio.sleep(0.5)


def _assert_unavailable(response: Any, dependency: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.headers["retry-after"]
    problem = response.json()
    assert problem["type"].endswith("dependency-unavailable")
    assert problem["dependency"] == dependency
    assert dependency in problem["detail"]


@pytest.mark.timeout(300)
async def test_s3_stopped_is_503_with_no_rows_and_the_same_key_works_once_s3_is_back(
    client: AsyncTestClient[Any], app_settings: Settings, stack: Stack, unique: str
) -> None:
    source, key = f"down-s3-{unique}", new_key("down-s3")
    body = body_for(1, source)
    await asyncio.to_thread(stack.stop, "s3")
    try:
        response = await post_ingest(client, 1, body, key=key, auth=DEV)
        _assert_unavailable(response, "object_store")

        health = await client.get("/health/detailed")
        assert health.status_code == 503
        assert health.json()["dependencies"]["object_store"]["status"] == "down"

        dsn = app_settings.database.dsn
        assert await fetchval(dsn, "SELECT count(*) FROM idempotency_keys WHERE key = $1", key) == 0
        assert await fetchval(dsn, "SELECT count(*) FROM outbox_events WHERE payload->>'source' = $1", source) == 0
        assert await fetchval(dsn, "SELECT count(*) FROM raw_object_manifest WHERE source = $1", source) == 0
    finally:
        await asyncio.to_thread(stack.start, "s3")  # returns once the bucket takes writes

    accepted, _ = await _retry_until_accepted(client, 1, body, key)
    assert "idempotent-replayed" not in accepted.headers  # nothing was stored by the failed attempt
    record_id = accepted.json()["record_id"]
    after = await written(app_settings, source, keys=(key,))
    assert (after.idempotency, after.outbox, after.manifest) == (1, 1, 1)
    assert after.objects == (f"{source}/{record_id}.json",)


@pytest.mark.timeout(300)
async def test_postgres_stopped_is_503_with_nothing_stored_and_the_pool_recovers_when_it_is_back(
    client: AsyncTestClient[Any], app_settings: Settings, stack: Stack, unique: str
) -> None:
    source, key = f"down-pg-{unique}", new_key("down-pg")
    body = body_for(2, source)
    # A request first, so the pool holds connections that the shutdown will kill.
    warm = await post_ingest(client, 2, body_for(2, source, payload={"warm": True}), key=new_key("warm"), auth=DEV)
    assert warm.status_code == 202

    await asyncio.to_thread(stack.stop, "postgres")
    try:
        for _ in range(3):  # every attempt while it is down, not only the first
            response = await post_ingest(client, 2, body, key=key, auth=DEV)
            _assert_unavailable(response, "database")
    finally:
        await asyncio.to_thread(stack.start, "postgres")  # returns once it accepts connections

    accepted, attempts = await _retry_until_accepted(client, 2, body, key)
    assert attempts == 1, f"the pool needed {attempts} attempts to recover after Postgres came back"
    assert "idempotent-replayed" not in accepted.headers
    after = await written(app_settings, source, keys=(key,))
    # The warm-up record and this one; no object was written while the database was down.
    assert (after.idempotency, after.outbox, after.manifest, len(after.objects)) == (1, 2, 2, 2)
