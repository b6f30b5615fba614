"""What other contexts may ask about canonical records and a record's processing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from exchange.adapters.postgres import Connection

__all__ = ("Attempt", "Canonical", "DeadLetter", "Processing", "canonical_ids_for_source", "record_processing")


async def canonical_ids_for_source(conn: Connection, source: str) -> set[str]:
    rows = await conn.fetch("SELECT record_id::text AS record_id FROM canonical_records WHERE source = $1", source)
    return {r["record_id"] for r in rows}


# Error messages are left out on purpose: the status answer carries types and stages only.
_ATTEMPTS = """
SELECT attempt_no, status, result, error_type, error_stage, transient, started_at, ended_at
FROM processing_attempts WHERE record_id = $1::uuid AND pipeline = 'normalizer' ORDER BY attempt_no LIMIT $2
"""
_CANONICAL = "SELECT normalized_at, ingested_at FROM canonical_records WHERE record_id = $1::uuid"
_DEAD_LETTERS = """
SELECT error_type, error_stage, attempts, failed_at, status, resolved_at FROM dlq_events
WHERE record_id = $1::uuid ORDER BY id LIMIT $2
"""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One normalizer attempt from the ledger."""

    attempt_no: int
    status: str
    result: str | None
    error_type: str | None
    error_stage: str | None
    transient: bool | None
    started_at: dt.datetime
    ended_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Canonical:
    normalized_at: dt.datetime
    ingested_at: dt.datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    error_type: str
    error_stage: str
    attempts: int
    failed_at: dt.datetime
    status: str
    resolved_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Processing:
    """Everything the normalizer knows of one record: its attempts, its canonical row, its DLQ entries."""

    attempts: list[Attempt]
    canonical: Canonical | None
    dead_letters: list[DeadLetter]


async def record_processing(conn: Connection, record_id: str, *, limit: int = 50) -> Processing:
    """The normalizer's facts about ``record_id`` (at most ``limit`` attempts and DLQ entries)."""
    attempts = [Attempt(**dict(r)) for r in await conn.fetch(_ATTEMPTS, record_id, limit)]
    row = await conn.fetchrow(_CANONICAL, record_id)
    canonical = Canonical(row["normalized_at"], row["ingested_at"]) if row is not None else None
    dead = [DeadLetter(**dict(r)) for r in await conn.fetch(_DEAD_LETTERS, record_id, limit)]
    return Processing(attempts, canonical, dead)
