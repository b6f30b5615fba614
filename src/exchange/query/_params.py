"""Checks shared by the REST and GraphQL reads: a 400 (or a GraphQL error) naming the parameter."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from exchange.errors import ValidationFailed

__all__ = ("TOKEN", "checked_token", "checked_uuid", "instant")

TOKEN = re.compile(r"^[0-9a-f]{64}$")


def checked_token(value: str, field: str) -> str:
    if not TOKEN.match(value):
        raise ValidationFailed(f"{field}: must be 64 lower-case hex characters", field=field)
    return value


def checked_uuid(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValidationFailed(f"{field}: must be a UUID", field=field) from None


def instant(moment: dt.datetime | None, field: str) -> dt.datetime | None:
    """A UTC instant (a time without an offset is taken as UTC); 400 naming ``field`` for one that has none."""
    if moment is None:
        return None
    try:
        return (moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except OverflowError:
        raise ValidationFailed(f"{field}: not a representable instant", field=field) from None
