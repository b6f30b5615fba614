"""Reading persons: a record's person and why it is linked, a person's records (keyset pages)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from exchange.adapters.postgres import Connection
from exchange.events import NIL_UUID
from exchange.linkage import DEFAULT_MODEL, TOKEN_BYTES, Field, Model, pattern

__all__ = (
    "RecordLinkage",
    "latest_model",
    "person_record_counts",
    "person_record_ids",
    "person_records",
    "persons_of_records",
    "record_linkage",
    "surviving_person",
)

_SURVIVOR = """
SELECT coalesce((SELECT merged_into FROM person_merges WHERE person_id = $1::uuid),
                (SELECT person_id FROM record_persons WHERE person_id = $1::uuid LIMIT 1))::text
"""
_PERSON_RECORDS = """
SELECT c.record_id::text AS record_id, c.source, c.event_version, c.record_kind, c.schema_hint, c.ingested_at,
       rp.linked_at
FROM record_persons rp JOIN canonical_records c ON c.record_id = rp.record_id
WHERE rp.person_id = $1::uuid AND rp.record_id > $2::uuid
ORDER BY rp.record_id LIMIT $3
"""
_RECORD_PERSON = """
SELECT person_id::text AS person_id, fields, linked_at,
       ARRAY(SELECT key_id FROM record_linkage WHERE record_id = $1::uuid ORDER BY key_id) AS key_ids
FROM record_persons WHERE record_id = $1::uuid
"""
# Records of the same person sharing a token with this one, and the recipes they share (a shared
# token's recipe is this record's recipe for it).
_AGREEMENTS = f"""
SELECT o.record_id::text AS record_id, array_agg(DISTINCT u.recipe ORDER BY u.recipe) AS recipes, rp.fields
FROM record_linkage r
CROSS JOIN LATERAL (
    SELECT substring(r.tokens FROM g.i * {TOKEN_BYTES} + 1 FOR {TOKEN_BYTES}) AS token, r.recipes[g.i + 1] AS recipe
    FROM generate_series(0, length(r.tokens) / {TOKEN_BYTES} - 1) AS g(i)
) u
JOIN linkage_tokens o ON o.token = u.token AND o.record_id <> r.record_id
JOIN record_persons rp ON rp.record_id = o.record_id AND rp.person_id = $2::uuid
WHERE r.record_id = $1::uuid
GROUP BY o.record_id, rp.fields
ORDER BY o.record_id
LIMIT $3
"""
_FIRST = NIL_UUID  # a walk in record-id order starts after it
_LATEST_MODEL = "SELECT model FROM linkage_models ORDER BY model_id DESC LIMIT 1"


async def latest_model(conn: Connection) -> Model:
    """The newest fitted model; the shipped default until the rebuild job has fitted one."""
    raw = await conn.fetchval(_LATEST_MODEL)
    return Model.from_json(raw) if raw is not None else DEFAULT_MODEL


@dataclass(frozen=True, slots=True)
class RecordLinkage:
    record_id: str
    person_id: str
    fields: list[str]
    linked_at: dt.datetime
    key_ids: list[str]
    agreements: list[dict[str, Any]]


async def surviving_person(conn: Connection, person_id: str) -> str | None:
    """The person an id stands for now (itself, or the person it was merged into); None if unknown."""
    found: str | None = await conn.fetchval(_SURVIVOR, person_id)
    return found


async def person_records(conn: Connection, person_id: str, *, after: str | None, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(_PERSON_RECORDS, person_id, after or _FIRST, limit)
    return [dict(r) for r in rows]


async def record_linkage(conn: Connection, record_id: str, model: Model, *, limit: int = 100) -> RecordLinkage | None:
    """Which person a record belongs to, and for each record of that person it shares tokens with,
    the recipes they agree on and the match weight those give under ``model``."""
    row = await conn.fetchrow(_RECORD_PERSON, record_id)
    if row is None:
        return None
    own = frozenset(Field(f) for f in row["fields"])
    agreements = []
    for other in await conn.fetch(_AGREEMENTS, record_id, row["person_id"], limit):
        observed = own & frozenset(Field(f) for f in other["fields"])
        weight = model.weight(pattern(other["recipes"], observed))
        agreements.append({"record_id": other["record_id"], "recipes": list(other["recipes"]),
                           "weight_bits": round(weight, 2), "links": weight >= model.threshold})
    return RecordLinkage(record_id, row["person_id"], sorted(row["fields"]), row["linked_at"], sorted(row["key_ids"]),
                         agreements)


# Batched reads for the GraphQL layer (one statement per page, whatever its size).
_PERSON_RECORD_IDS = """
SELECT p.record_id::text FROM record_persons p WHERE p.person_id = $1::uuid AND p.record_id > $2::uuid
ORDER BY p.record_id LIMIT $3
"""
_PERSONS_OF = "SELECT record_id::text, person_id::text FROM record_persons WHERE record_id = ANY($1::uuid[])"
_COUNTS = """
SELECT person_id::text, count(*) AS n FROM record_persons WHERE person_id = ANY($1::uuid[]) GROUP BY person_id
"""


async def person_record_ids(conn: Connection, person_id: str, *, after: str | None, limit: int) -> list[str]:
    """A page of a person's record ids in record-id order (a keyset walk: ``after`` the last one)."""
    return [r[0] for r in await conn.fetch(_PERSON_RECORD_IDS, person_id, after or _FIRST, limit)]


async def persons_of_records(conn: Connection, record_ids: list[str]) -> dict[str, str]:
    """record id -> its person, for the records that have one."""
    return {r[0]: r[1] for r in await conn.fetch(_PERSONS_OF, record_ids)}


async def person_record_counts(conn: Connection, person_ids: list[str]) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in await conn.fetch(_COUNTS, person_ids)}
