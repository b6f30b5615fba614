"""Event shapes shared by ingest, outbox, normalizer and replay (= contracts/events)."""

from __future__ import annotations

from exchange.events._ids import NIL_UUID, REPLAY_CORRELATION_PREFIX, uuid7
from exchange.events.record_ingested import (
    SOURCE_PATTERN,
    DlqEnvelope,
    DlqError,
    RawObject,
    RecordIngested,
    RecordIngestedV1,
    RecordIngestedV2,
    RecordKind,
    decode_event,
    encode_event,
    format_timestamp,
    make_event,
    new_event_id,
)
from exchange.events.topics import DLQ_V1, DLQ_V2, PLATFORM_TOPICS, TOPIC_V1, TOPIC_V2

__all__ = (
    "NIL_UUID",
    "DLQ_V1",
    "DLQ_V2",
    "PLATFORM_TOPICS",
    "REPLAY_CORRELATION_PREFIX",
    "SOURCE_PATTERN",
    "TOPIC_V1",
    "TOPIC_V2",
    "DlqEnvelope",
    "DlqError",
    "RawObject",
    "RecordIngested",
    "RecordIngestedV1",
    "RecordIngestedV2",
    "RecordKind",
    "decode_event",
    "encode_event",
    "format_timestamp",
    "make_event",
    "new_event_id",
    "uuid7",
)
