"""The processing ledger: ``processing_stage_state`` (current state) and
``processing_attempts`` (one row per attempt). Messages stored here are sanitized."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from exchange.adapters.postgres import Connection, Database

__all__ = ("PIPELINE", "AttemptRef", "DeliveryInfo", "Ledger")

PIPELINE = "normalizer"


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    record_id: str
    correlation_id: str | None
    event_version: str | None
    event_id: str | None
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class AttemptRef:
    record_id: str
    attempt_no: int
    already_canonical: bool = False


# One statement (so one round-trip and its own commit, no BEGIN/COMMIT): the attempt
# start is recorded, and we learn whether the record is canonical already (a redelivery).
_START = """
WITH state AS (
    INSERT INTO processing_stage_state AS s
        (record_id, pipeline, status, attempt_count, last_attempt_at, correlation_id, event_version,
         event_id, kafka_topic, kafka_partition, kafka_offset)
    VALUES ($1, $2, 'running', 1, now(), $3, $4, $5, $6, $7, $8)
    ON CONFLICT (record_id, pipeline) DO UPDATE SET
        status = 'running',
        attempt_count = s.attempt_count + 1,
        last_attempt_at = now(),
        next_retry_at = NULL,
        correlation_id = COALESCE(EXCLUDED.correlation_id, s.correlation_id),
        event_version = COALESCE(EXCLUDED.event_version, s.event_version),
        event_id = COALESCE(EXCLUDED.event_id, s.event_id),
        kafka_topic = EXCLUDED.kafka_topic,
        kafka_partition = EXCLUDED.kafka_partition,
        kafka_offset = EXCLUDED.kafka_offset,
        updated_at = now()
    RETURNING attempt_count
), attempt AS (
    INSERT INTO processing_attempts
        (record_id, pipeline, attempt_no, status, event_id, kafka_topic, kafka_partition, kafka_offset)
    SELECT $1, $2, attempt_count, 'started', $5, $6, $7, $8 FROM state
    RETURNING attempt_no
)
SELECT attempt_no, EXISTS (SELECT 1 FROM canonical_records WHERE record_id = $1) AS already_canonical
FROM attempt
"""

_FAILED_STATE = """
UPDATE processing_stage_state
SET status = $3, last_error_type = $4, last_error_message = $5, last_error_stage = $6,
    next_retry_at = $7, updated_at = now()
WHERE record_id = $1 AND pipeline = $2
"""
_FAILED_ATTEMPT = """
UPDATE processing_attempts
SET status = 'failed', ended_at = now(), error_type = $4, error_message = $5, error_stage = $6, transient = $7,
    result = $8
WHERE record_id = $1 AND pipeline = $2 AND attempt_no = $3
"""
_DLQ_ATTEMPT = """
UPDATE processing_attempts SET status = 'dlq_published', ended_at = COALESCE(ended_at, now())
WHERE record_id = $1 AND pipeline = $2 AND attempt_no = $3
"""


class Ledger:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self, info: DeliveryInfo) -> AttemptRef:
        """Record an attempt start, committed before any processing step."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                _START, info.record_id, PIPELINE, info.correlation_id, info.event_version, info.event_id,
                info.topic, info.partition, info.offset,
            )
        assert row is not None
        return AttemptRef(info.record_id, int(row["attempt_no"]), bool(row["already_canonical"]))

    async def failed(
        self,
        ref: AttemptRef,
        *,
        error_type: str,
        message: str,
        stage: str,
        transient: bool,
        next_retry_at: dt.datetime | None,
        final: bool,
    ) -> None:
        status = "dlq" if final else "failed_retryable"
        async with self._db.transaction() as conn:
            await conn.execute(_FAILED_STATE, ref.record_id, PIPELINE, status, error_type, message, stage,
                               next_retry_at)
            await conn.execute(_FAILED_ATTEMPT, ref.record_id, PIPELINE, ref.attempt_no, error_type, message,
                               stage, transient, "dlq" if final else "retry")

    @staticmethod
    async def dlq_published(conn: Connection, ref: AttemptRef) -> None:
        await conn.execute(_DLQ_ATTEMPT, ref.record_id, PIPELINE, ref.attempt_no)
