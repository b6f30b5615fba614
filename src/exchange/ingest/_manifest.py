"""The raw-object manifest, as other contexts may read and change it.

(The ``enqueued -> canonicalized`` transition is part of the normalizer's single-statement
canonical write, for the round-trip; see normalize/_pipeline.py.)"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from exchange.adapters.postgres import Connection

__all__ = ("Acceptance", "ManifestEntry", "StoredObject", "manifest_for_source", "record_acceptance", "record_orphan",
           "stored_objects")

_FOR_SOURCE = """
SELECT record_id::text AS record_id, object_key, state, sha256, size_bytes, created_at
FROM raw_object_manifest WHERE source = $1
"""
# Objects as ingest stored them (rows written before the ETag was kept, and orphans, have none).
_STORED = """
SELECT object_key, etag, sha256, size_bytes, event_version, record_kind, schema_hint
FROM raw_object_manifest WHERE object_key = ANY($1::text[]) AND etag IS NOT NULL
"""
_ORPHANED = """
INSERT INTO raw_object_manifest
    (record_id, source, bucket, object_key, sha256, size_bytes, event_version, state)
VALUES ($1, $2, $3, $4, $5, $6, 'unknown', 'orphaned')
ON CONFLICT (record_id) DO UPDATE SET state = 'orphaned', object_key = EXCLUDED.object_key, updated_at = now()
"""


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    record_id: str
    object_key: str
    state: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What ingest knew of an object it stored: its ETag then, digest and size, and the version
    (and, for v2, ``record_kind`` and ``schema_hint``) its validated body was accepted as."""

    etag: str
    sha256: str
    size_bytes: int
    event_version: str
    record_kind: str | None
    schema_hint: str | None


async def stored_objects(conn: Connection, keys: Sequence[str]) -> dict[str, StoredObject]:
    """The objects among ``keys`` that ingest stored, by key (one round-trip, the key's index)."""
    rows = await conn.fetch(_STORED, list(keys))
    return {
        r["object_key"]: StoredObject(r["etag"], r["sha256"], r["size_bytes"], r["event_version"],
                                      r["record_kind"], r["schema_hint"])
        for r in rows
    }


async def manifest_for_source(conn: Connection, source: str) -> dict[str, ManifestEntry]:
    rows = await conn.fetch(_FOR_SOURCE, source)
    return {r["record_id"]: ManifestEntry(r["record_id"], r["object_key"], r["state"], r["created_at"]) for r in rows}


async def record_orphan(
    conn: Connection, *, record_id: str, source: str, bucket: str, quarantine_key: str, sha256: str, size: int
) -> None:
    """Document a quarantined orphan (raw object whose ingest never committed)."""
    await conn.execute(_ORPHANED, uuid.UUID(record_id), source, bucket, quarantine_key, sha256, size)


# The client comes from the manifest (kept with the object since revision 0005) or, for older rows,
# from an idempotency row not yet purged.
_ACCEPTANCE = """
SELECT m.created_at, m.source, m.event_version, m.state, m.sha256, m.size_bytes,
       coalesce(m.client_id, (SELECT i.client_id FROM idempotency_keys i
                              WHERE i.record_id = m.record_id ORDER BY i.created_at LIMIT 1)) AS client_id
FROM raw_object_manifest m WHERE m.record_id = $1::uuid
"""


@dataclass(frozen=True, slots=True)
class Acceptance:
    """What ingest knows of one record: when and from whom it was accepted, and its raw object."""

    accepted_at: dt.datetime
    client_id: str | None
    """The JWT ``sub`` that sent it; None for a record from before it was kept, once its key expired."""
    source: str
    event_version: str
    state: str
    sha256: str
    size_bytes: int


async def record_acceptance(conn: Connection, record_id: str) -> Acceptance | None:
    row = await conn.fetchrow(_ACCEPTANCE, record_id)
    if row is None:
        return None
    return Acceptance(row["created_at"], row["client_id"], row["source"], row["event_version"], row["state"],
                      row["sha256"], row["size_bytes"])
