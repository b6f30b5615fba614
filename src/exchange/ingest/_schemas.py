"""Request bodies and headers of POST /v1/ingest and /v2/ingest, and their validation.

Validation errors name the field path (or the header) and the rule, never the offending value.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import msgspec

from exchange.errors import ValidationFailed
from exchange.events import SOURCE_PATTERN, RecordKind
from exchange.settings import IngestSettings
from exchange.tokenize import dob_problem
from exchange.web.validation import field_and_rule

__all__ = (
    "KEY_MAX_LENGTH",
    "KEY_MIN_LENGTH",
    "KEY_PATTERN",
    "IngestAccepted",
    "PartnerRecordV1",
    "PartnerRecordV2",
    "RecordKind",
    "decode_v1",
    "decode_v2",
    "idempotency_key",
)

# The Idempotency-Key rules: checked by ``idempotency_key`` and documented in the OpenAPI
# header parameter (ingest/_openapi.py) from these same constants.
KEY_MIN_LENGTH = 8
KEY_MAX_LENGTH = 255
KEY_PATTERN = r"^[\x21-\x7E]+$"  # visible ASCII: no spaces, no control or non-ASCII bytes
_KEY = re.compile(KEY_PATTERN)

Source = Annotated[str, msgspec.Meta(pattern=SOURCE_PATTERN, description="object-key-safe source name")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Ssn = Annotated[str, msgspec.Meta(max_length=64)]
# Validated against the configured set (SCHEMA_HINTS) in decode_v2; the OpenAPI enum shows the default set.
SchemaHint = Annotated[str, msgspec.Meta(extra_json_schema={"extra": {"enum": list(IngestSettings().schema_hints)}})]
# The structs forbid unknown fields, but Litestar's OpenAPI generator does not say so; it
# copies ``extra_json_schema["extra"]`` onto the generated schema (msgspec ignores it when decoding).
_CLOSED = msgspec.Meta(extra_json_schema={"extra": {"additionalProperties": False}})


class PatientV1(msgspec.Struct, forbid_unknown_fields=True):
    first_name: Name
    last_name: Name
    dob: dt.date
    ssn: Ssn | None = None


class PatientV2(msgspec.Struct, forbid_unknown_fields=True):
    given_name: Name
    family_name: Name
    dob: dt.date
    ssn: Ssn | None = None


class PartnerRecordV1(msgspec.Struct, forbid_unknown_fields=True):
    source: Source
    record_type: RecordKind
    patient: Annotated[PatientV1, _CLOSED]
    payload: dict[str, Any]


class PartnerRecordV2(msgspec.Struct, forbid_unknown_fields=True):
    source: Source
    record_kind: RecordKind
    schema_hint: SchemaHint
    patient: Annotated[PatientV2, _CLOSED]
    payload: dict[str, Any]


class IngestAccepted(msgspec.Struct):
    record_id: str
    correlation_id: str
    status: str = "accepted"


_v1 = msgspec.json.Decoder(PartnerRecordV1)
_v2 = msgspec.json.Decoder(PartnerRecordV2)


def idempotency_key(value: str | None) -> str:
    """The request's Idempotency-Key (the header's latin-1 text), or a 400 naming the rule."""
    if value is None:
        rule = "required header is missing"
    elif len(value) < KEY_MIN_LENGTH:
        rule = f"must be at least {KEY_MIN_LENGTH} characters"
    elif len(value) > KEY_MAX_LENGTH:
        rule = f"must be at most {KEY_MAX_LENGTH} characters"
    elif not _KEY.fullmatch(value):
        rule = "does not match the required pattern"
    else:
        return value
    raise ValidationFailed(f"Idempotency-Key: {rule}", field="Idempotency-Key")


def _blank_names(pairs: tuple[tuple[str, str], ...]) -> None:
    for field, value in pairs:
        if not value.strip():
            raise ValidationFailed("must not be blank", field=field)


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        field, rule = field_and_rule(str(exc))
        raise ValidationFailed(f"{field or 'body'}: {rule}", field=field or None) from None
    except UnicodeDecodeError:
        raise ValidationFailed("body is not valid UTF-8") from None
    except msgspec.DecodeError:
        raise ValidationFailed("body is not valid JSON") from None
    except RecursionError:  # msgspec stops at the interpreter's recursion limit (~1000 levels)
        raise ValidationFailed("body is nested too deeply") from None


def _plausible_dob(dob: dt.date) -> None:
    """The normalizer's quality gate, applied at the door: what it would refuse is a 400 now,
    not a dead letter later."""
    if (problem := dob_problem(dob)) is not None:
        raise ValidationFailed(f"patient.dob: {problem}", field="patient.dob")


def decode_v1(body: bytes) -> PartnerRecordV1:
    record: PartnerRecordV1 = _decode(_v1, body)
    _blank_names((("patient.first_name", record.patient.first_name), ("patient.last_name", record.patient.last_name)))
    _plausible_dob(record.patient.dob)
    return record


def decode_v2(body: bytes, schema_hints: tuple[str, ...]) -> PartnerRecordV2:
    record: PartnerRecordV2 = _decode(_v2, body)
    if record.schema_hint not in schema_hints:
        raise ValidationFailed("schema_hint: not one of the allowed values", field="schema_hint")
    _blank_names(
        (("patient.given_name", record.patient.given_name), ("patient.family_name", record.patient.family_name))
    )
    _plausible_dob(record.patient.dob)
    return record
