"""``dlq_events``: one row per envelope published to a DLQ topic (for the DLQ tooling).

A dead letter counts as done only with its row (the normalizer waits for the database
rather than commit past a record that the tooling would never see)."""

from __future__ import annotations

import datetime as dt

from exchange.adapters.kafka import ConsumedMessage
from exchange.adapters.postgres import Database
from exchange.events import DlqEnvelope
from exchange.normalize._ledger import AttemptRef, Ledger

__all__ = ("record_dlq_event",)

# One row per dead letter, however often it is written: a write retried after its COMMIT's
# answer was lost finds the row there (one envelope, one ``failed_at``).
_INSERT = """
INSERT INTO dlq_events
    (record_id, event_id, event_version, dlq_topic, source_topic, kafka_partition, kafka_offset,
     original_event, error_type, error_message, error_stage, attempts, failed_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13::timestamptz
WHERE NOT EXISTS (
    SELECT 1 FROM dlq_events WHERE record_id = $1 AND dlq_topic = $4 AND failed_at = $13::timestamptz
)
"""
_STATE_DLQ = """
INSERT INTO processing_stage_state AS s
    (record_id, pipeline, status, attempt_count, last_error_type, last_error_message, last_error_stage,
     event_version, event_id, kafka_topic, kafka_partition, kafka_offset)
VALUES ($1, 'normalizer', 'dlq', $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (record_id, pipeline) DO UPDATE SET
    status = 'dlq', last_error_type = EXCLUDED.last_error_type, last_error_message = EXCLUDED.last_error_message,
    last_error_stage = EXCLUDED.last_error_stage, next_retry_at = NULL, updated_at = now()
"""


async def record_dlq_event(
    db: Database,
    ref: AttemptRef | None,
    *,
    record_id: str,
    event_id: str | None,
    event_version: str,
    dlq_topic: str,
    msg: ConsumedMessage,
    envelope: DlqEnvelope,
) -> None:
    failed_at = dt.datetime.fromisoformat(envelope.failed_at)
    async with db.transaction() as conn:
        await conn.execute(
            _INSERT, record_id, event_id, event_version, dlq_topic, msg.topic, msg.partition, msg.offset,
            envelope.original_event, envelope.error.type, envelope.error.message, envelope.error.stage,
            envelope.attempts, failed_at,
        )
        await conn.execute(
            _STATE_DLQ, record_id, envelope.attempts, envelope.error.type, envelope.error.message,
            envelope.error.stage, event_version, event_id, msg.topic, msg.partition, msg.offset,
        )
        if ref is not None:
            await Ledger.dlq_published(conn, ref)
