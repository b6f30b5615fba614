"""The processing ledger: ``processing_stage_state`` (current state) and
``processing_attempts`` (one row per attempt). Messages stored here are sanitized."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from exchange.adapters.postgres import Connection, Database, unnest_columns
from exchange.errors import DatabaseUnavailable
from exchange.runtime.batcher import Batcher

__all__ = ("PIPELINE", "AttemptRef", "DeliveryInfo", "Ledger")

PIPELINE = "normalizer"


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    """Where a record was delivered from; the fields are ``_START``'s columns, in its order."""

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


# One statement for a whole batch of attempt starts (its own commit, no BEGIN/COMMIT):
# each start is recorded, and we learn which records are canonical already (redeliveries).
# Batched by ``Batcher``: the fixed cost of a statement and a commit is paid once per
# batch instead of once per record.
_START = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::int[], $7::bigint[])
        WITH ORDINALITY
        AS i(record_id, correlation_id, event_version, event_id, kafka_topic, kafka_partition, kafka_offset, n)
), state AS (
    INSERT INTO processing_stage_state AS s
        (record_id, pipeline, status, attempt_count, last_attempt_at, correlation_id, event_version,
         event_id, kafka_topic, kafka_partition, kafka_offset)
    SELECT record_id, 'normalizer', 'running', 1, now(), correlation_id, event_version, event_id, kafka_topic,
           kafka_partition, kafka_offset
    FROM input
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
    RETURNING record_id, attempt_count
), attempt AS (
    INSERT INTO processing_attempts
        (record_id, pipeline, attempt_no, status, event_id, kafka_topic, kafka_partition, kafka_offset)
    SELECT i.record_id, 'normalizer', s.attempt_count, 'started', i.event_id, i.kafka_topic, i.kafka_partition,
           i.kafka_offset
    FROM input i JOIN state s USING (record_id)
    RETURNING record_id, attempt_no
)
SELECT a.attempt_no, EXISTS (SELECT 1 FROM canonical_records c WHERE c.record_id = a.record_id) AS already_canonical
FROM input i JOIN attempt a USING (record_id)
ORDER BY i.n
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
        self._starts: Batcher[DeliveryInfo, AttemptRef] = Batcher(
            self._start_many, key=lambda info: info.record_id.lower(), fail_together=(DatabaseUnavailable,)
        )

    async def start(self, info: DeliveryInfo) -> AttemptRef:
        """Record an attempt start, committed before any processing step (batched with the
        starts of other records in flight)."""
        return await self._starts.submit(info)

    async def _start_many(self, infos: Sequence[DeliveryInfo]) -> list[AttemptRef]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(_START, *unnest_columns(infos))  # answers in the order of ``infos``
        return [AttemptRef(info.record_id, int(row["attempt_no"]), bool(row["already_canonical"]))
                for info, row in zip(infos, rows, strict=True)]

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

