"""Turn msgspec validation messages into (field path, rule) without the offending value; bounds
shared by the routes' parameters."""

from __future__ import annotations

import re

__all__ = ("BIGINT_MAX", "NO_NUL", "field_and_rule")

NO_NUL = r"^[^\x00]*$"
"""Pattern for text bound for PostgreSQL, which cannot store NUL (U+0000): refused at the door (400
naming the field) instead of failing in the database."""
BIGINT_MAX = 2**63 - 1
"""The largest id a ``bigint``/``bigserial`` column holds: a larger one cannot exist, and asyncpg
cannot even send it."""

_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_FIELD_IN_MSG = re.compile(r"field `([^`]*)`")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def field_and_rule(message: str) -> tuple[str, str]:
    """msgspec quotes values in some messages (enums, patterns); we keep only the rule."""
    match = _AT.search(message)
    path = match.group(1) if match else ""
    text = message[: match.start()] if match else message
    named = _FIELD_IN_MSG.search(text)
    if text.startswith("Object missing required field") and named:
        return _join(path, named.group(1)), "required field is missing"
    if text.startswith("Object contains unknown field") and named:
        return _join(path, named.group(1)), "unknown field (additionalProperties is false)"
    if text.startswith("Invalid enum value"):
        return path, "not one of the allowed values"
    if "matching regex" in text:
        return path, "does not match the required pattern"
    if "date" in text.lower():
        return path, "must be a date in YYYY-MM-DD form"
    if text.startswith("Expected") and "'" not in text:
        # "Expected `str`, got `int`" and "Expected `str` of length >= 1" quote types only.
        return path, text
    return path, "invalid value"
