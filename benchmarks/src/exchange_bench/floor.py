"""The floor: the ingest path's work without the service, run as its own process.

The same client libraries, the same concurrency, the same database round-trips as the
service: BEGIN with the advisory lock, the idempotency lookup, the S3 PUT, the three
inserts in one statement, COMMIT, and a pool that skips asyncpg's reset query as the
service's does. ``ingest_rps`` divided by this is how much the service adds.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import asyncpg

from exchange.adapters.objectstore import make_object_store
from exchange.adapters.postgres import advisory_key, keep_session
from exchange.settings import load_settings, read_env_file
from exchange_bench._bare import drive, main

LOOKUP = "SELECT request_sha256, response FROM idempotency_keys WHERE client_id = $1 AND key = $2"
INSERTS = """
WITH manifest AS (
    INSERT INTO raw_object_manifest (record_id, source, bucket, object_key, sha256, size_bytes, event_version, state)
    VALUES ($1, $2, $3, $4, $5, $6, '1', 'enqueued')
), outbox AS (
    INSERT INTO outbox_events (topic, key, payload, headers) VALUES ($7, $8, $9::jsonb, '{}'::jsonb)
)
INSERT INTO idempotency_keys (client_id, key, request_sha256, record_id, status_code, response, expires_at)
VALUES ('floor', $10, $5, $1, 202, $11::jsonb, now() + interval '1 day')
"""


async def run(env_file: str, source: str, topic: str, concurrency: int, duration: float,
              warmup: float = 0.0) -> dict[str, float]:
    # The same object-store client as the server under test (OBJECT_STORE_CLIENT).
    settings = load_settings({**read_env_file(Path(env_file)), **os.environ})
    store = make_object_store(settings.object_store)
    pool = await asyncpg.create_pool(settings.database.dsn, min_size=concurrency // 2, max_size=concurrency,
                                     reset=keep_session)
    payload = json.dumps({"source": source, "record_type": "encounter",
                          "patient": {"first_name": "F", "last_name": "L", "dob": "1980-01-01"},
                          "payload": {"n": 1}}).encode()

    async def one(_n: int) -> None:
        record_id = uuid.uuid4()
        key = f"floor-{record_id}"
        sha = hashlib.sha256(payload).hexdigest()
        async with pool.acquire() as conn:
            await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({advisory_key('floor', key)})")
            await conn.fetchrow(LOOKUP, "floor", key)
            object_key = f"{source}/{record_id}.json"
            await store.put(object_key, payload)
            event = json.dumps({"record_id": str(record_id), "key": object_key})
            await conn.execute(INSERTS, record_id, source, store.bucket, object_key, sha, len(payload), topic,
                               str(record_id), event, key, json.dumps({"record_id": str(record_id)}))
            await conn.execute("COMMIT")

    done, elapsed = await drive(one, concurrency, duration, warmup)
    await pool.close()
    await store.close()
    return {"floor_rps": done / elapsed, "requests": done, "elapsed_s": elapsed}


if __name__ == "__main__":
    main(run)
