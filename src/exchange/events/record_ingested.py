"""``record.ingested`` events v1/v2 and the DLQ envelope: the shapes in contracts/events.

Events carry no patient data: only where the raw object is and how to verify it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

import msgspec

__all__ = (
    "SOURCE_PATTERN",
    "RecordKind",
    "DlqEnvelope",
    "DlqError",
    "RawObject",
    "RecordIngested",
    "RecordIngestedV1",
    "RecordIngestedV2",
    "decode_event",
    "encode_event",
    "format_timestamp",
    "make_event",
    "new_event_id",
)

RecordKind = Literal["encounter", "claim", "lab_result"]

# A source becomes the first segment of a raw object's key: object-key safe, no "..".
SOURCE_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class RawObject(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    bucket: str
    key: str
    sha256: str
    size_bytes: int


class RecordIngestedV1(msgspec.Struct, forbid_unknown_fields=True, frozen=True, tag_field="event_version", tag="1"):
    event_type: Literal["record.ingested"]
    event_id: str
    occurred_at: str
    correlation_id: str
    source: str
    record_id: str
    raw_object: RawObject


class RecordIngestedV2(msgspec.Struct, forbid_unknown_fields=True, frozen=True, tag_field="event_version", tag="2"):
    event_type: Literal["record.ingested"]
    event_id: str
    occurred_at: str
    correlation_id: str
    source: str
    record_id: str
    record_kind: RecordKind
    schema_hint: str
    raw_object: RawObject


RecordIngested = RecordIngestedV1 | RecordIngestedV2

_decoder = msgspec.json.Decoder(RecordIngested)
_encoder = msgspec.json.Encoder()


def decode_event(data: bytes) -> RecordIngested:
    """Parse an event; raises ``msgspec.ValidationError``/``DecodeError`` for a bad one."""
    event: RecordIngested = _decoder.decode(data)
    return event


def encode_event(event: RecordIngested) -> bytes:
    return _encoder.encode(event)


def format_timestamp(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds, e.g. ``2026-11-23T15:20:48.123456Z``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_event_id() -> str:
    return str(uuid.uuid4())


def make_event(
    version: Literal["1", "2"],
    *,
    event_id: str,
    occurred_at: str,
    correlation_id: str,
    source: str,
    record_id: str,
    raw_object: RawObject,
    record_kind: str | None = None,
    schema_hint: str | None = None,
) -> RecordIngested:
    """The one place events are built (ingest, replay, repair)."""
    if version == "1":
        return RecordIngestedV1(
            event_type="record.ingested", event_id=event_id, occurred_at=occurred_at,
            correlation_id=correlation_id, source=source, record_id=record_id, raw_object=raw_object,
        )
    if record_kind not in ("encounter", "claim", "lab_result") or not schema_hint:
        raise ValueError("a v2 event needs a record_kind and a schema_hint")
    return RecordIngestedV2(
        event_type="record.ingested", event_id=event_id, occurred_at=occurred_at,
        correlation_id=correlation_id, source=source, record_id=record_id,
        record_kind=record_kind,  # type: ignore[arg-type]
        schema_hint=schema_hint, raw_object=raw_object,
    )


class DlqError(msgspec.Struct, frozen=True):
    type: str
    message: str
    stage: str


class DlqEnvelope(msgspec.Struct, frozen=True):
    """What the normalizer publishes to ``record.ingested.vN.dlq`` when it gives up."""

    original_event: dict[str, Any]
    error: DlqError
    attempts: int
    failed_at: str
