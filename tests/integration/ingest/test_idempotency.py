"""Idempotent ingest against the real stack: replay, conflict, concurrency, client scope, retention.

The in-process application (ingest role only) runs once per module; every test uses its
own source and keys, so nothing depends on what other tests wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from exchange.adapters.postgres import Database
from exchange.events import TOPIC_V1, TOPIC_V2
from exchange.ingest import purge_expired_keys
from exchange.settings import Settings
from tests.integration.ingest._support import (
    PROBLEM_JSON,
    Written,
    as_json,
    body_for,
    manifest_rows,
    new_key,
    outbox_rows,
    post_ingest,
    s3_get,
    s3_keys,
    v1_body,
    written,
)
from tests.support.app import DEV, bearer
from tests.support.db import fetch, fetchval

pytestmark = pytest.mark.timeout(300)


# -- the runbook demo (Milestone 6, step 5) ---------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
async def test_same_key_same_body_replays_and_a_different_body_is_409(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str, version: int
) -> None:
    source, key = f"idem-demo-{unique}", new_key("demo")
    body = body_for(version, source)

    first = await post_ingest(client, version, body, key=key, auth=DEV)
    second = await post_ingest(client, version, body, key=key, auth=DEV)

    assert first.status_code == 202, first.text
    assert second.status_code == 202, second.text
    assert first.json()["status"] == "accepted"
    assert second.json() == first.json()  # same record_id and correlation_id
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"

    changed = body_for(version, source, patient={**body["patient"], "dob": "1990-01-02"})
    conflict = await post_ingest(client, version, changed, key=key, auth=DEV)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith(PROBLEM_JSON)
    assert conflict.json()["type"].endswith("idempotency-conflict")
    assert conflict.json()["status"] == 409

    # The conflict changed nothing: the key still replays the first response, one record in all.
    again = await post_ingest(client, version, body, key=key, auth=DEV)
    assert again.status_code == 202
    assert again.json() == first.json()
    record_id = first.json()["record_id"]
    assert len(await outbox_rows(app_settings, record_id)) == 1
    assert len(await manifest_rows(app_settings, record_id)) == 1
    assert (await written(app_settings, source, keys=(key,))).objects == (f"{source}/{record_id}.json",)


@pytest.mark.parametrize("version", [1, 2])
async def test_an_accepted_record_has_its_raw_bytes_manifest_and_event_committed_together(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str, version: int
) -> None:
    source, key = f"idem-raw-{unique}", new_key("raw")
    # Odd spacing, key order and non-ASCII text: the stored object must be these exact bytes.
    body = body_for(version, source, payload={"note": "Grüße, 東京", "n": [1, 2.5, None]})
    raw = (json.dumps(body, ensure_ascii=False, indent=3) + "\n").encode()

    response = await post_ingest(client, version, raw, key=key, auth=DEV)
    assert response.status_code == 202, response.text
    record_id = response.json()["record_id"]
    assert uuid.UUID(record_id).version == 7

    object_key = f"{source}/{record_id}.json"
    assert await s3_get(app_settings, object_key) == raw

    sha256 = hashlib.sha256(raw).hexdigest()
    [manifest] = await manifest_rows(app_settings, record_id)
    assert (manifest["source"], manifest["object_key"], manifest["bucket"]) == (
        source, object_key, app_settings.object_store.bucket,
    )
    assert (manifest["sha256"], manifest["size_bytes"], manifest["event_version"]) == (sha256, len(raw), str(version))
    assert manifest["state"] == "enqueued"

    [outbox] = await outbox_rows(app_settings, record_id)
    assert outbox["topic"] == (TOPIC_V1 if version == 1 else TOPIC_V2)
    event = as_json(outbox["payload"])
    assert event["record_id"] == record_id
    assert event["raw_object"] == {
        "bucket": app_settings.object_store.bucket, "key": object_key, "sha256": sha256, "size_bytes": len(raw),
    }
    assert event["correlation_id"] == response.json()["correlation_id"]
    assert as_json(outbox["headers"])["correlation_id"] == response.json()["correlation_id"]

    [idem] = await fetch(
        app_settings.database.dsn,
        "SELECT client_id, request_sha256, record_id, status_code, response, expires_at - created_at AS ttl "
        "FROM idempotency_keys WHERE key = $1",
        key,
    )
    assert (idem["client_id"], idem["request_sha256"], str(idem["record_id"]), idem["status_code"]) == (
        "dev", sha256, record_id, 202,
    )
    assert as_json(idem["response"]) == response.json()
    assert idem["ttl"].total_seconds() == app_settings.ingest.idempotency_retention_hours * 3600


# -- property: random sequences of (key, body) -------------------------------------------------

_requests = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=10)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=_requests, version=st.sampled_from([1, 2]))
async def test_random_key_and_body_sequences_keep_one_record_per_key_and_409_exactly_on_a_changed_body(
    client: AsyncTestClient[Any], app_settings: Settings, requests: list[tuple[int, int]], version: int
) -> None:
    run = uuid.uuid4().hex[:12]  # fresh per example: hypothesis replays examples
    source = f"idem-prop-{run}"
    keys = [f"prop-{run}-k{i}" for i in range(3)]
    first_body: dict[int, int] = {}
    record_ids: dict[int, set[str]] = {}

    for key_index, variant in requests:
        body = body_for(version, source, payload={"variant": variant})
        response = await post_ingest(client, version, body, key=keys[key_index], auth=DEV)
        expected_first = first_body.setdefault(key_index, variant)
        if variant == expected_first:
            assert response.status_code == 202, response.text
            record_ids.setdefault(key_index, set()).add(response.json()["record_id"])
        else:
            assert response.status_code == 409, response.text
            assert response.json()["type"].endswith("idempotency-conflict")

    for key_index in first_body:
        assert len(record_ids[key_index]) == 1, "one key, one record"
        [record_id] = record_ids[key_index]
        assert len(await outbox_rows(app_settings, record_id)) == 1
        assert len(await manifest_rows(app_settings, record_id)) == 1
    used = tuple(keys[i] for i in first_body)
    assert await written(app_settings, source, keys=used) == _expected(source, record_ids)


def _expected(source: str, record_ids: dict[int, set[str]]) -> Written:
    """One idempotency row, outbox row, manifest row and raw object per record."""
    n = len(record_ids)
    objects = tuple(sorted(f"{source}/{rid}.json" for ids in record_ids.values() for rid in ids))
    return Written(idempotency=n, outbox=n, manifest=n, objects=objects)


# -- concurrency ----------------------------------------------------------------------------


async def test_fifty_concurrent_requests_with_one_key_make_exactly_one_record(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str
) -> None:
    source, key = f"idem-conc-{unique}", new_key("conc")
    body = v1_body(source)

    responses = await asyncio.gather(*(post_ingest(client, 1, body, key=key, auth=DEV) for _ in range(50)))

    assert [r.status_code for r in responses] == [202] * 50, [r.text for r in responses if r.status_code != 202]
    assert len({r.json()["record_id"] for r in responses}) == 1
    assert len({r.json()["correlation_id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 49
    [record_id] = {r.json()["record_id"] for r in responses}
    assert await written(app_settings, source, keys=(key,)) == _expected(source, {0: {record_id}})


# -- keys are scoped to the client ----------------------------------------------------------


async def test_two_clients_may_use_one_key_with_different_bodies_and_get_two_records(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str
) -> None:
    source, key = f"idem-scope-{unique}", new_key("shared")
    alice, bob = bearer(app_settings, sub=f"alice-{unique}"), bearer(app_settings, sub=f"bob-{unique}")
    body_a = v1_body(source, payload={"from": "a"})
    body_b = v1_body(source, payload={"from": "b"})

    a = await post_ingest(client, 1, body_a, key=key, auth=alice)
    b = await post_ingest(client, 1, body_b, key=key, auth=bob)

    assert (a.status_code, b.status_code) == (202, 202), (a.text, b.text)
    assert a.json()["record_id"] != b.json()["record_id"]
    assert "idempotent-replayed" not in b.headers
    rows = await fetch(
        app_settings.database.dsn, "SELECT client_id, record_id FROM idempotency_keys WHERE key = $1 ORDER BY 1", key
    )
    assert [(r["client_id"], str(r["record_id"])) for r in rows] == [
        (f"alice-{unique}", a.json()["record_id"]), (f"bob-{unique}", b.json()["record_id"]),
    ]


async def test_a_second_client_reusing_a_key_and_body_gets_its_own_record_not_the_first_response(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str
) -> None:
    source, key = f"idem-scope2-{unique}", new_key("shared")
    alice, bob = bearer(app_settings, sub=f"alice-{unique}"), bearer(app_settings, sub=f"bob-{unique}")
    body = v1_body(source)

    a = await post_ingest(client, 1, body, key=key, auth=alice, headers={"X-Correlation-Id": f"alice-cid-{unique}"})
    b = await post_ingest(client, 1, body, key=key, auth=bob, headers={"X-Correlation-Id": f"bob-cid-{unique}"})
    b_again = await post_ingest(client, 1, body, key=key, auth=bob)

    assert (a.status_code, b.status_code, b_again.status_code) == (202, 202, 202)
    assert b.json()["record_id"] != a.json()["record_id"]
    assert b.json()["correlation_id"] == f"bob-cid-{unique}"
    assert "idempotent-replayed" not in b.headers
    assert b_again.json() == b.json()  # bob's own key replays bob's record
    assert b_again.headers["idempotent-replayed"] == "true"
    assert (await written(app_settings, source, keys=(key,))).outbox == 2


# -- retention ------------------------------------------------------------------------------


async def test_an_expired_key_accepts_a_different_body_as_a_new_record(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str
) -> None:
    source, key = f"idem-exp-{unique}", new_key("exp")
    first = await post_ingest(client, 1, v1_body(source, payload={"n": 1}), key=key, auth=DEV)
    assert first.status_code == 202

    await fetchval(
        app_settings.database.dsn,
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1 RETURNING 1",
        key,
    )
    second = await post_ingest(client, 1, v1_body(source, payload={"n": 2}), key=key, auth=DEV)

    assert second.status_code == 202, second.text
    assert "idempotent-replayed" not in second.headers
    assert second.json()["record_id"] != first.json()["record_id"]
    [row] = await fetch(
        app_settings.database.dsn, "SELECT record_id, expires_at > now() AS live FROM idempotency_keys WHERE key = $1",
        key,
    )
    assert (str(row["record_id"]), row["live"]) == (second.json()["record_id"], True)
    assert (await written(app_settings, source, keys=(key,))).outbox == 2


async def test_purge_expired_keys_deletes_expired_rows_and_keeps_live_ones(
    client: AsyncTestClient[Any], app_settings: Settings, unique: str
) -> None:
    source = f"idem-purge-{unique}"
    expired_key, live_key = new_key("purge-old"), new_key("purge-live")
    for key in (expired_key, live_key):
        response = await post_ingest(client, 1, v1_body(source, payload={"k": key}), key=key, auth=DEV)
        assert response.status_code == 202
    await fetchval(
        app_settings.database.dsn,
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 hour' WHERE key = $1 RETURNING 1",
        expired_key,
    )

    db = Database(app_settings.database)
    await db.start()
    try:
        deleted = await purge_expired_keys(db, batch=2)
    finally:
        await db.close()

    assert deleted >= 1
    remaining = await fetch(
        app_settings.database.dsn, "SELECT key FROM idempotency_keys WHERE key = ANY($1::text[])",
        [expired_key, live_key],
    )
    assert [r["key"] for r in remaining] == [live_key]
    dsn = app_settings.database.dsn
    expired = await fetchval(dsn, "SELECT count(*) FROM idempotency_keys WHERE expires_at <= now()")
    assert expired == 0
    # Only the stored response goes: the record itself (manifest, event, raw object) stays.
    assert (await written(app_settings, source)).manifest == 2
    assert len(await s3_keys(app_settings, f"{source}/")) == 2
