"""The normalizer's floor: its per-record work without the service, as a process of its own.

The same libraries and concurrency as the normalizer: the backlog consumed with the same
Kafka adapter, and for each record the raw object's GET (the same object-store client), its
sha256 checked, its JSON parsed, the seed token's HMAC, and the canonical row inserted; rows
go to the database in batches as the normalizer's group commit sends them, and offsets are
committed after each batch. No ledger, no linkage, no retries, no metrics: what is left is the
work any normalizer must do. ``normalizer_rps`` divided by this rate is what the service adds.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import time
from pathlib import Path

import asyncpg
import msgspec

from exchange.adapters.kafka import AsyncConsumer
from exchange.adapters.objectstore import make_object_store
from exchange.adapters.postgres import keep_session
from exchange.events import decode_event
from exchange.runtime.eventloop import install_uvloop
from exchange.settings import load_settings
from exchange.tokenize import patient_token
from exchange.tokenize._canonical import PatientIdentifiers

__all__ = ("run",)

_INSERT = """
INSERT INTO canonical_records
    (record_id, source, raw_object_key, raw_sha256, normalized, ingested_at, correlation_id, event_version,
     token_key_id)
SELECT r, s, k, h, n::jsonb, now(), c, '1', $7
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(r, s, k, h, n, c)
ON CONFLICT (record_id) DO NOTHING
"""


class _Patient(msgspec.Struct):
    first_name: str
    last_name: str
    dob: str
    ssn: str | None = None


class _Raw(msgspec.Struct):
    patient: _Patient


async def run(records: int, concurrency: int) -> dict[str, float]:
    settings = load_settings(dict(os.environ))
    key = settings.tokenizer.hmac_key.reveal().encode()
    store = make_object_store(settings.object_store)
    pool = await asyncpg.create_pool(settings.database.dsn, min_size=2, max_size=4, reset=keep_session)
    consumer = AsyncConsumer(settings.kafka.brokers, f"{settings.kafka.consumer_group}-floor", settings.kafka.topics,
                             on_revoke=lambda _partitions: {})
    await consumer.start()
    decode_raw = msgspec.json.Decoder(_Raw).decode
    limit = asyncio.Semaphore(concurrency)

    async def one(value: bytes) -> tuple[str, str, str, str, str, str]:
        event = decode_event(value)
        async with limit:
            raw = await store.get(event.raw_object.key)
        if hashlib.sha256(raw).hexdigest() != event.raw_object.sha256:
            raise RuntimeError("sha256 mismatch in the floor's backlog")
        p = decode_raw(raw).patient
        token = patient_token(key, PatientIdentifiers(p.first_name, p.last_name, p.dob, p.ssn))
        normalized = json.dumps({"patient_token": token, "meta": {"source": event.source}})
        return (event.record_id, event.source, event.raw_object.key, event.raw_object.sha256, normalized,
                event.correlation_id)

    done = 0
    first_at: float | None = None
    try:
        while done < records:
            batch = await consumer.poll_batch(max(1, min(concurrency * 2, records - done)), 0.5)
            if not batch:
                continue
            if first_at is None:
                first_at = time.perf_counter()
            rows = await asyncio.gather(*(one(m.value) for m in batch))
            async with pool.acquire() as conn:
                await conn.execute(_INSERT, *(list(col) for col in zip(*rows, strict=True)), settings.tokenizer.key_id)
            offsets: dict[tuple[str, int], int] = {}
            for m in batch:
                offsets[(m.topic, m.partition)] = max(offsets.get((m.topic, m.partition), -1), m.offset + 1)
            await consumer.commit(offsets)
            done += len(batch)
    finally:
        await consumer.close()
        await pool.close()
        await store.close()
    elapsed = time.perf_counter() - (first_at or time.perf_counter())
    return {"normalizer_floor_rps": done / max(elapsed, 1e-6), "records": done, "elapsed_s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    install_uvloop()
    result = asyncio.run(run(args.records, args.concurrency))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
