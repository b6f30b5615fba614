"""The normalizer's floor: its per-record work without the service, as a process of its own.

The same libraries and concurrency as the normalizer: the backlog consumed with the same
Kafka adapter, and for each record the raw object's GET (the same object-store client), its
sha256 checked, its JSON parsed, its tokens computed (the seed token and the linkage tokens:
``token_set``, the normalizer's pure computation), and what the product reads of a record
written: the canonical row, its derived index row, its linkage tokens and a person row (a
new person each: no candidates are read). Rows go to the database in one statement a batch
as the normalizer's group commit sends them, and offsets are committed after each batch.

Left out is what the service adds to that: the ledger (attempts, stage state, manifest state),
the person decision (the candidate read, the resolution, the linkage lock), quality gates,
retries, the DLQ, metrics and traces. ``normalizer_rps`` divided by this rate is its cost.
``--bare`` keeps the first floor (the seed token and the canonical row only; the normalizer
had no linkage when it was written), reported beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from exchange.adapters.kafka import AsyncConsumer
from exchange.adapters.objectstore import make_object_store
from exchange.adapters.postgres import keep_session
from exchange.events import decode_event, uuid7
from exchange.linkage import TOKEN_BYTES
from exchange.runtime.eventloop import install_uvloop
from exchange.settings import load_settings
from exchange.tokenize import patient_token, token_set
from exchange.tokenize._canonical import PatientIdentifiers

__all__ = ("run",)

# The canonical rows: the bare floor's one statement, and the first step of the whole floor's.
_BARE = """
INSERT INTO canonical_records
    (record_id, source, raw_object_key, raw_sha256, normalized, ingested_at, correlation_id, event_version,
     token_key_id)
SELECT r, s, k, h, n::jsonb, now(), c, '1', $7
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(r, s, k, h, n, c)
ON CONFLICT (record_id) DO NOTHING
"""
_INSERT = f"""
WITH canon AS ({_BARE}    RETURNING record_id, source, normalized_at, ingested_at
), idx AS (
    INSERT INTO derived_patient_record_index
        (patient_token, record_id, source, event_version, ingested_at, normalized_at)
    SELECT t, c.record_id, c.source, '1', c.ingested_at, c.normalized_at
    FROM canon c JOIN unnest($1::uuid[], $8::text[]) AS u(r, t) ON u.r = c.record_id
), stored AS (
    INSERT INTO record_linkage (record_id, key_id, recipes, tokens)
    SELECT r, $13, string_to_array(rs, ','), ts FROM unnest($1::uuid[], $9::text[], $10::bytea[]) AS u(r, rs, ts)
    RETURNING record_id, tokens
), lookup AS (
    INSERT INTO linkage_tokens (token, record_id)
    SELECT substring(s.tokens FROM g.i * {TOKEN_BYTES} + 1 FOR {TOKEN_BYTES}), s.record_id
    FROM stored s CROSS JOIN LATERAL generate_series(0, length(s.tokens) / {TOKEN_BYTES} - 1) AS g(i)
)
INSERT INTO record_persons (record_id, person_id, fields)
SELECT r, p, string_to_array(f, ',') FROM unnest($1::uuid[], $11::uuid[], $12::text[]) AS u(r, p, f)
"""


class _Patient(msgspec.Struct):
    first_name: str
    last_name: str
    dob: str
    ssn: str | None = None


class _Raw(msgspec.Struct):
    patient: _Patient


async def run(records: int, concurrency: int, *, bare: bool = False) -> dict[str, float]:
    settings = load_settings(dict(os.environ))
    key = settings.tokenizer.hmac_key.reveal().encode()
    ring = ((settings.linkage.key_id, settings.linkage.hmac_key.reveal().encode()),)
    store = make_object_store(settings.object_store)
    pool = await asyncpg.create_pool(settings.database.dsn, min_size=2, max_size=4, reset=keep_session)
    consumer = AsyncConsumer(settings.kafka.brokers, f"{settings.kafka.consumer_group}-floor", settings.kafka.topics,
                             on_revoke=lambda _partitions: {})
    await consumer.start()
    decode_raw = msgspec.json.Decoder(_Raw).decode
    limit = asyncio.Semaphore(concurrency)

    async def one(value: bytes) -> tuple[Any, ...]:
        event = decode_event(value)
        async with limit:
            raw = await store.get(event.raw_object.key)
        if hashlib.sha256(raw).hexdigest() != event.raw_object.sha256:
            raise RuntimeError("sha256 mismatch in the floor's backlog")
        p = decode_raw(raw).patient
        ids = PatientIdentifiers(p.first_name, p.last_name, p.dob, p.ssn)
        if bare:
            token = patient_token(key, ids)
            return (event.record_id, event.source, event.raw_object.key, event.raw_object.sha256,
                    json.dumps({"patient_token": token, "meta": {"source": event.source}}), event.correlation_id)
        tokens = token_set(key, ring, ids)
        [block] = tokens.linkage
        normalized = json.dumps({"patient_token": tokens.patient_token, "meta": {"source": event.source}})
        return (event.record_id, event.source, event.raw_object.key, event.raw_object.sha256, normalized,
                event.correlation_id, tokens.patient_token, ",".join(block.recipes), b"".join(block.digests),
                str(uuid7()), ",".join(sorted(f.value for f in tokens.fields)))

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
            columns = [list(col) for col in zip(*rows, strict=True)]
            async with pool.acquire() as conn:
                if bare:
                    await conn.execute(_BARE, *columns, settings.tokenizer.key_id)
                else:
                    await conn.execute(_INSERT, *columns[:6], settings.tokenizer.key_id, *columns[6:],
                                       settings.linkage.key_id)
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
    parser.add_argument("--bare", action="store_true", help="the seed token and the canonical row only")
    args = parser.parse_args()
    install_uvloop()
    result = asyncio.run(run(args.records, args.concurrency, bare=args.bare))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
