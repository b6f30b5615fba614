"""HTML form fields into the admin operations' own request types, validated the same way.

A form sends text: empty fields are left out (the type's default applies), checkboxes are
present or absent, and the text is converted by msgspec against the very struct the HTTP API
decodes, so the console accepts exactly what the API does. A refusal names the field and the
rule, never the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec

from exchange.errors import ValidationFailed
from exchange.web import BIGINT_MAX
from exchange.web.validation import field_and_rule

__all__ = ("entry_id", "from_form", "optional_text")

T = TypeVar("T")
_MAX_FIELD = 2000


def from_form(form: Mapping[str, Any], kind: type[T], *, fields: Iterable[str] = (),
              checkboxes: Iterable[str] = ()) -> T:
    raw: dict[str, Any] = {}
    for name in fields:
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            if len(value) > _MAX_FIELD:
                raise ValidationFailed(f"{name}: too long", field=name)
            raw[name] = value.strip()
    for name in checkboxes:
        raw[name] = form.get(name) is not None
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as exc:
        field, rule = field_and_rule(str(exc))
        raise ValidationFailed(f"{field or 'form'}: {rule}", field=field or None) from None


def optional_text(value: str | None, field: str, *, max_length: int = 200) -> str | None:
    """A filter's text: None when empty; no NUL (PostgreSQL cannot hold it), bounded length."""
    if value is None or not value.strip():
        return None
    if len(value) > max_length or "\x00" in value:
        raise ValidationFailed(f"{field}: at most {max_length} characters, no NUL", field=field)
    return value.strip()


def entry_id(text: str | None, field: str = "entry") -> int:
    """A ``dlq_events`` id from a path or a query: digits within ``bigint``."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 19 or not 1 <= int(text) <= BIGINT_MAX:
        raise ValidationFailed(f"{field}: must be a DLQ entry id (a positive integer)", field=field)
    return int(text)
