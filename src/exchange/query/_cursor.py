"""Opaque keyset cursors: where the previous page ended, never an offset.

A cursor names its kind, so one issued by a list of another kind is refused instead of
silently walking the wrong order. ``t``: a page ordered by ``(ingested_at, record_id)``;
``r``: a page ordered by ``record_id``. Encoded as URL-safe base64 (no padding) of
``<kind>:<microseconds since the epoch>:<record id hex>``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Literal

from exchange.errors import ValidationFailed

__all__ = ("MAX_PAGE", "Cursor", "Kind", "check_page_size")

MAX_PAGE = 1000
"""The largest page any list answers (REST ``limit``, GraphQL ``first``)."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DECODED = re.compile(r"^([tr]):(-?[0-9]{1,19}):([0-9a-f]{32})$")
_MAX_ENCODED = 96

Kind = Literal["t", "r"]


def check_page_size(value: int, field: str) -> int:
    if not 1 <= value <= MAX_PAGE:
        raise ValidationFailed(f"{field}: must be from 1 to {MAX_PAGE}", field=field)
    return value


@dataclass(frozen=True, slots=True)
class Cursor:
    kind: Kind
    record_id: uuid.UUID
    ingested_at: dt.datetime | None = None

    @classmethod
    def after_row(cls, kind: Kind, record_id: str, ingested_at: dt.datetime | None = None) -> Cursor:
        return cls(kind, uuid.UUID(record_id), ingested_at)

    def encode(self) -> str:
        micros = 0 if self.ingested_at is None else (self.ingested_at - _EPOCH) // dt.timedelta(microseconds=1)
        text = f"{self.kind}:{micros}:{self.record_id.hex}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, kind: Kind, field: str) -> Cursor:
        """The cursor ``text`` stands for; 400 naming ``field`` if it is not one of kind ``kind``."""
        problem = ValidationFailed(f"{field}: not a cursor this list issued", field=field)
        if len(text) > _MAX_ENCODED or not text.isascii():
            raise problem
        try:
            decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise problem from None
        match = _DECODED.match(decoded)
        if match is None or match.group(1) != kind:
            raise problem
        try:
            at = _EPOCH + dt.timedelta(microseconds=int(match.group(2))) if kind == "t" else None
        except OverflowError:
            raise problem from None
        return cls(kind, uuid.UUID(match.group(3)), at)
