"""Canonical rows written straight into the session database (the query layer reads them; how they
were made is the pipeline's tests' business): ``n`` records of one source, one second apart."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass

import asyncpg

BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

_CANONICAL = """
INSERT INTO canonical_records (record_id, source, raw_object_key, raw_sha256, normalized, ingested_at,
                               normalized_at, correlation_id, event_version, record_kind, schema_hint)
SELECT r.id, $2, $2 || '/' || r.id || '.json', repeat('0', 64),
       jsonb_build_object('patient_token', r.token, 'meta',
                          jsonb_build_object('record_type', CASE WHEN r.v1 THEN 'encounter' END)),
       r.at, r.at + interval '1 second', 'seed', CASE WHEN r.v1 THEN '1' ELSE '2' END,
       CASE WHEN r.v1 THEN NULL ELSE 'claim' END, CASE WHEN r.v1 THEN NULL ELSE 'seed.v1' END
FROM unnest($1::uuid[], $3::text[], $4::timestamptz[], $5::bool[]) AS r(id, token, at, v1)
"""
_INDEX = """
INSERT INTO derived_patient_record_index (patient_token, record_id, source, event_version, record_kind, schema_hint,
                                          ingested_at, normalized_at)
SELECT normalized->>'patient_token', record_id, source, event_version, record_kind, schema_hint, ingested_at,
       normalized_at FROM canonical_records WHERE record_id = ANY($1::uuid[])
"""
_PERSONS = """
INSERT INTO record_persons (record_id, person_id, fields) SELECT unnest($1::uuid[]), $2::uuid, '{}'::text[]
"""


@dataclass(frozen=True)
class Seeded:
    source: str
    record_ids: list[str]
    """In page order: by ingestion time."""
    tokens: list[str]
    """Two tokens: even records carry the first, odd ones the second."""
    person_id: str
    """Every record belongs to this person."""


def token_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


async def seed(dsn: str, source: str, n: int) -> Seeded:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    tokens = [token_of(f"{source}-a"), token_of(f"{source}-b")]
    person = str(uuid.uuid4())
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(_CANONICAL, ids, source, [tokens[i % 2] for i in range(n)],
                               [BASE + dt.timedelta(seconds=i) for i in range(n)], [i % 2 == 0 for i in range(n)])
            await conn.execute(_INDEX, ids)
            await conn.execute(_PERSONS, ids, person)
    finally:
        await conn.close()
    return Seeded(source, ids, tokens, person)
