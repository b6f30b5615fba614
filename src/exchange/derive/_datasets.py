"""Derived datasets: tables rebuilt from canonical rows, one batch of record ids at a time.

A dataset knows three statements: rebuild a batch (upsert what differs, delete what has no
canonical row any more), count what a rebuild of a batch would change (``--dry-run``), and
compare the whole table with canonical rows (``--verify``). Batches walk ``record_id`` in
order, so a run resumes after the last batch it committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from exchange.adapters.postgres import Connection
from exchange.events import NIL_UUID

__all__ = ("DATASETS", "Batch", "Dataset", "PatientIndex")

FIRST = NIL_UUID  # a walk in record-id order starts after it


@dataclass(frozen=True, slots=True)
class Batch:
    last: str | None
    """The batch's highest canonical record id; None when there was nothing after the checkpoint."""
    scanned: int
    changed: int


class Dataset(Protocol):
    name: str

    async def rebuild(self, conn: Connection, after: str, size: int, *, dry_run: bool) -> Batch: ...

    async def tail(self, conn: Connection, after: str, *, dry_run: bool) -> int:
        """Rows beyond the last canonical record (their record is gone): deleted, counted."""
        ...

    async def verify(self, conn: Connection) -> dict[str, Any]: ...


# The index row a canonical row implies. `normalized` holds the token; the rest are columns.
_IMPLIED = """
SELECT c.record_id, c.normalized->>'patient_token' AS patient_token, c.source, c.event_version, c.record_kind,
       c.schema_hint, c.ingested_at, c.normalized_at
FROM canonical_records c
"""
_COLUMNS = "patient_token, source, event_version, record_kind, schema_hint, ingested_at, normalized_at"

_REBUILD = f"""
WITH src AS ({_IMPLIED} WHERE c.record_id > $1::uuid ORDER BY c.record_id LIMIT $2),
bounds AS (SELECT (SELECT record_id FROM src ORDER BY record_id DESC LIMIT 1) AS last,
                  (SELECT count(*) FROM src) AS scanned),
upserted AS (
    INSERT INTO derived_patient_record_index AS d (record_id, {_COLUMNS})
    SELECT record_id, {_COLUMNS} FROM src
    ON CONFLICT (record_id) DO UPDATE SET
        patient_token = EXCLUDED.patient_token, source = EXCLUDED.source, event_version = EXCLUDED.event_version,
        record_kind = EXCLUDED.record_kind, schema_hint = EXCLUDED.schema_hint, ingested_at = EXCLUDED.ingested_at,
        normalized_at = EXCLUDED.normalized_at
    WHERE ({", ".join(f"d.{c}" for c in _COLUMNS.split(", "))})
          IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in _COLUMNS.split(", "))})
    RETURNING 1
), removed AS (
    DELETE FROM derived_patient_record_index d
    USING bounds b
    WHERE d.record_id > $1::uuid AND d.record_id <= b.last
      AND NOT EXISTS (SELECT 1 FROM canonical_records c WHERE c.record_id = d.record_id)
    RETURNING 1
)
SELECT (SELECT last::text FROM bounds) AS last, (SELECT scanned FROM bounds) AS scanned,
       (SELECT count(*) FROM upserted) + (SELECT count(*) FROM removed) AS changed
"""
_WOULD_CHANGE = f"""
WITH src AS ({_IMPLIED} WHERE c.record_id > $1::uuid ORDER BY c.record_id LIMIT $2),
bounds AS (SELECT (SELECT record_id FROM src ORDER BY record_id DESC LIMIT 1) AS last,
                  (SELECT count(*) FROM src) AS scanned)
SELECT (SELECT last::text FROM bounds) AS last, (SELECT scanned FROM bounds) AS scanned,
       (SELECT count(*) FROM src s LEFT JOIN derived_patient_record_index d USING (record_id)
        WHERE d.record_id IS NULL OR ({", ".join(f"d.{c}" for c in _COLUMNS.split(", "))})
              IS DISTINCT FROM ({", ".join(f"s.{c}" for c in _COLUMNS.split(", "))}))
     + (SELECT count(*) FROM derived_patient_record_index d, bounds b
        WHERE d.record_id > $1::uuid AND d.record_id <= b.last
          AND NOT EXISTS (SELECT 1 FROM canonical_records c WHERE c.record_id = d.record_id)) AS changed
"""
_TAIL_DELETE = "WITH gone AS (DELETE FROM derived_patient_record_index WHERE record_id > $1::uuid RETURNING 1) " \
               "SELECT count(*) FROM gone"
_TAIL_COUNT = "SELECT count(*) FROM derived_patient_record_index WHERE record_id > $1::uuid"
_VERIFY = f"""
WITH implied AS ({_IMPLIED}),
missing AS (SELECT i.record_id FROM implied i LEFT JOIN derived_patient_record_index d USING (record_id)
            WHERE d.record_id IS NULL),
extra AS (SELECT d.record_id FROM derived_patient_record_index d LEFT JOIN canonical_records c USING (record_id)
          WHERE c.record_id IS NULL),
differing AS (SELECT i.record_id FROM implied i JOIN derived_patient_record_index d USING (record_id)
              WHERE ({", ".join(f"d.{c}" for c in _COLUMNS.split(", "))})
                    IS DISTINCT FROM ({", ".join(f"i.{c}" for c in _COLUMNS.split(", "))}))
SELECT (SELECT count(*) FROM canonical_records) AS canonical_count,
       (SELECT count(*) FROM derived_patient_record_index) AS derived_count,
       (SELECT count(*) FROM missing) AS missing_count,
       (SELECT count(*) FROM extra) AS extra_count,
       (SELECT count(*) FROM differing) AS differing_count,
       ARRAY(SELECT record_id::text FROM missing ORDER BY record_id LIMIT 20) AS missing,
       ARRAY(SELECT record_id::text FROM extra ORDER BY record_id LIMIT 20) AS extra,
       ARRAY(SELECT record_id::text FROM differing ORDER BY record_id LIMIT 20) AS differing
"""


class PatientIndex:
    """``derived_patient_record_index``: the original's patient token -> records index."""

    name = "patient-index"

    async def rebuild(self, conn: Connection, after: str, size: int, *, dry_run: bool) -> Batch:
        row = await conn.fetchrow(_WOULD_CHANGE if dry_run else _REBUILD, after, size)
        assert row is not None
        return Batch(last=row["last"], scanned=int(row["scanned"]), changed=int(row["changed"]))

    async def tail(self, conn: Connection, after: str, *, dry_run: bool) -> int:
        return int(await conn.fetchval(_TAIL_COUNT if dry_run else _TAIL_DELETE, after))

    async def verify(self, conn: Connection) -> dict[str, Any]:
        row = await conn.fetchrow(_VERIFY)
        assert row is not None
        report = dict(row)
        report["missing"], report["extra"], report["differing"] = (
            list(row["missing"]), list(row["extra"]), list(row["differing"]))
        return report


DATASETS: dict[str, Dataset] = {d.name: d for d in (PatientIndex(),)}
