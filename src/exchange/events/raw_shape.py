"""What a raw object's shape says about its event: the rule ``--emit-version auto`` follows.

- version "2" when it has ``record_kind`` and ``schema_hint`` and its patient has ``given_name``;
- version "1" when it has ``record_type`` and its patient has ``first_name``;
- otherwise no version (replay skips the object as ``unrecognized``).
A v2 event's ``record_kind`` is the shape's ``record_kind`` (else its ``record_type``) and its
``schema_hint`` the shape's ``schema_hint``.

Ingest reads the shape of every body it stores and keeps it in the manifest, so a replay of an
object unchanged since ingest builds the same event without reading the object again; the rule
lives here, once, for both of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

__all__ = ("RawShape", "read_raw_shape")


@dataclass(frozen=True, slots=True)
class RawShape:
    version: Literal["1", "2"] | None
    """The version ``auto`` infers, or None when the shape is neither."""
    kind: str | None
    """``record_kind``, else ``record_type``: what a v2 event of this object would carry."""
    hint: str | None
    """``schema_hint``."""


_UNREADABLE = RawShape(None, None, None)


class _Shape(msgspec.Struct):
    patient: dict[str, Any] | None = None
    record_type: str | None = None
    record_kind: str | None = None
    schema_hint: str | None = None


_decode = msgspec.json.Decoder(_Shape).decode


def read_raw_shape(raw: bytes) -> RawShape:
    try:
        shape = _decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return _UNREADABLE
    return RawShape(_version_of(shape), shape.record_kind or shape.record_type, shape.schema_hint)


def _version_of(shape: _Shape) -> Literal["1", "2"] | None:
    if not isinstance(shape.patient, dict):
        return None
    if shape.record_kind and shape.schema_hint and "given_name" in shape.patient:
        return "2"
    if shape.record_type and "first_name" in shape.patient:
        return "1"
    return None
