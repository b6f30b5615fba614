"""Reading raw objects back as events: key layout, version inference, deterministic events.

Version inference (``--emit-version auto``), from the raw object's shape:
- v2 when it has ``record_kind`` and ``schema_hint`` and its patient has ``given_name``;
- v1 when it has ``record_type`` and its patient has ``first_name``;
- otherwise the object is skipped (counted as ``unrecognized``).
A v2 event's ``record_kind`` is the shape's ``record_kind`` (else its ``record_type``).

An object ingest stored and nobody changed since need not be read: ingest validated its body
as the version it was sent to, so its manifest row (``event_version``, and the v2 event's
``record_kind`` and ``schema_hint``) is the shape this rule reads from it, as far as any
event depends on it (``stored_shape``; a v1 body has no ``schema_hint``, so it is never
v2-compatible either way).
Replayed events are deterministic: ``event_id`` is a UUIDv5 of (record_id, version, sha256),
``occurred_at`` is the record id's UUIDv7 timestamp (else the object's last-modified time),
``correlation_id`` is ``replay-<record_id>``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal, cast

import msgspec

from exchange.adapters.objectstore import ObjectInfo, ObjectStore
from exchange.events import (
    REPLAY_CORRELATION_PREFIX,
    SOURCE_PATTERN,
    RawObject,
    RecordIngested,
    format_timestamp,
    make_event,
)
from exchange.ingest import StoredObject

__all__ = (
    "EmitVersion",
    "RawRef",
    "RawShape",
    "build_replay_event",
    "event_for",
    "infer_version",
    "parse_key",
    "raw_records",
    "read_raw_shape",
    "stored_shape",
)

EmitVersion = Literal["v1", "v2", "auto"]
_NAMESPACE = uuid.UUID("6f1d3c3e-4a52-4d6e-9a51-6e0c1f0a7c11")
# <source>/<record_id>.json, the source by the same rule ingest validates, the record id a
# UUID in its 8-4-4-4-12 form (as ingest writes it).
_KEY = re.compile(
    r"^(?P<source>" + SOURCE_PATTERN.strip("^$") + r")/"
    r"(?P<record_id>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\.json$"
)


@dataclass(frozen=True, slots=True)
class RawRef:
    source: str
    record_id: str
    key: str


def parse_key(key: str) -> RawRef | None:
    match = _KEY.match(key)
    if match is None:
        return None
    # The pattern admits only the canonical layout, so lower case is uuid.UUID's spelling.
    return RawRef(match.group("source"), match.group("record_id").lower(), key)


async def raw_records(store: ObjectStore, source: str) -> dict[str, ObjectInfo]:
    """The source's raw objects that are records (``<source>/<record_id>.json``), by record id."""
    found: dict[str, ObjectInfo] = {}
    async for info in store.list_objects(f"{source}/"):
        ref = parse_key(info.key)
        if ref is not None:
            found[ref.record_id] = info
    return found


@dataclass(frozen=True, slots=True)
class RawShape:
    """What a raw object's shape says about its event."""

    version: Literal["1", "2"] | None
    """The version ``auto`` infers, or None when the shape is neither."""
    kind: str | None
    """``record_kind``, else ``record_type``: what a v2 event of this object would carry."""
    hint: str | None
    """``schema_hint``."""


_NO_SHAPE = RawShape(None, None, None)


class _Shape(msgspec.Struct):
    patient: dict[str, Any] | None = None
    record_type: str | None = None
    record_kind: str | None = None
    schema_hint: str | None = None


_decode_shape = msgspec.json.Decoder(_Shape).decode


def read_raw_shape(raw: bytes) -> RawShape:
    try:
        shape = _decode_shape(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return _NO_SHAPE
    return RawShape(_version_of(shape), shape.record_kind or shape.record_type, shape.schema_hint)


def _version_of(shape: _Shape) -> Literal["1", "2"] | None:
    if not isinstance(shape.patient, dict):
        return None
    if shape.record_kind and shape.schema_hint and "given_name" in shape.patient:
        return "2"
    if shape.record_type and "first_name" in shape.patient:
        return "1"
    return None


def stored_shape(stored: StoredObject) -> RawShape:
    """The shape of an object as ingest stored it (see the module docstring)."""
    version = stored.event_version if stored.event_version in ("1", "2") else None
    return RawShape(cast(Literal["1", "2"] | None, version), stored.record_kind, stored.schema_hint)


def infer_version(raw: bytes) -> Literal["1", "2"] | None:
    return read_raw_shape(raw).version


def _occurred_at(record_id: str, info: ObjectInfo) -> str:
    if record_id[14] == "7":  # a UUIDv7 (canonical form): its first 48 bits are Unix milliseconds
        millis = int(record_id[:8] + record_id[9:13], 16)
        try:
            return format_timestamp(dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC))
        except (ValueError, OverflowError, OSError):
            pass  # past year 9999: not a time ingest wrote; the object's time will do
    return format_timestamp(info.last_modified)


def build_replay_event(
    ref: RawRef, info: ObjectInfo, raw: bytes, bucket: str, emit: EmitVersion
) -> RecordIngested | str:
    """The event for a raw object read back, or the reason it is skipped."""
    shape = read_raw_shape(raw) if emit != "v1" else _NO_SHAPE  # v1 needs neither version nor v2 fields
    return event_for(ref, info, shape, hashlib.sha256(raw).hexdigest(), len(raw), bucket, emit)


def event_for(
    ref: RawRef, info: ObjectInfo, shape: RawShape, sha256: str, size: int, bucket: str, emit: EmitVersion
) -> RecordIngested | str:
    """The event for a raw object of this shape, digest and size (read now, or kept by ingest)."""
    version = shape.version if emit == "auto" else ("1" if emit == "v1" else "2")
    if version is None:
        return "unrecognized"
    kind = hint = None
    if version == "2":
        kind, hint = shape.kind, shape.hint
        if kind not in ("encounter", "claim", "lab_result") or not hint:
            return "not_v2_compatible"
    return make_event(
        version,
        event_id=str(uuid.uuid5(_NAMESPACE, f"{ref.record_id}|{version}|{sha256}")),
        occurred_at=_occurred_at(ref.record_id, info),
        correlation_id=f"{REPLAY_CORRELATION_PREFIX}{ref.record_id}",
        source=ref.source,
        record_id=ref.record_id,
        raw_object=RawObject(bucket=bucket, key=ref.key, sha256=sha256, size_bytes=size),
        record_kind=kind,
        schema_hint=hint,
    )
