"""Reading raw objects back as events: key layout, version inference, deterministic events.

Version inference (``--emit-version auto``), from the raw object's shape:
- v2 when it has ``record_kind`` and ``schema_hint`` and its patient has ``given_name``;
- v1 when it has ``record_type`` and its patient has ``first_name``;
- otherwise the object is skipped (counted as ``unrecognized``).
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
from typing import Any, Literal

import msgspec

from exchange.adapters.objectstore import ObjectInfo, ObjectStore
from exchange.events import SOURCE_PATTERN, RawObject, RecordIngested, format_timestamp, make_event

__all__ = ("EmitVersion", "RawRef", "build_replay_event", "infer_version", "parse_key", "raw_records")

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


class _Shape(msgspec.Struct):
    patient: dict[str, Any] | None = None
    record_type: str | None = None
    record_kind: str | None = None
    schema_hint: str | None = None


_shape = msgspec.json.Decoder(_Shape)


def _read_shape(raw: bytes) -> _Shape | None:
    try:
        return _shape.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None


def infer_version(raw: bytes) -> Literal["1", "2"] | None:
    return _version_of(_read_shape(raw))


def _version_of(shape: _Shape | None) -> Literal["1", "2"] | None:
    if shape is None or not isinstance(shape.patient, dict):
        return None
    if shape.record_kind and shape.schema_hint and "given_name" in shape.patient:
        return "2"
    if shape.record_type and "first_name" in shape.patient:
        return "1"
    return None


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
    """The event for a raw object, or the reason it is skipped."""
    shape = _read_shape(raw) if emit != "v1" else None  # read once: the version and the v2 fields
    version = _version_of(shape) if emit == "auto" else ("1" if emit == "v1" else "2")
    if version is None:
        return "unrecognized"
    sha256 = hashlib.sha256(raw).hexdigest()
    kind = hint = None
    if version == "2":
        kind = (shape.record_kind or shape.record_type) if shape else None
        hint = shape.schema_hint if shape else None
        if kind not in ("encounter", "claim", "lab_result") or not hint:
            return "not_v2_compatible"
    return make_event(
        version,
        event_id=str(uuid.uuid5(_NAMESPACE, f"{ref.record_id}|{version}|{sha256}")),
        occurred_at=_occurred_at(ref.record_id, info),
        correlation_id=f"replay-{ref.record_id}",
        source=ref.source,
        record_id=ref.record_id,
        raw_object=RawObject(bucket=bucket, key=ref.key, sha256=sha256, size_bytes=len(raw)),
        record_kind=kind,
        schema_hint=hint,
    )
