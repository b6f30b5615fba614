"""decode_v1 / decode_v2: the request-body rules, and that errors never quote a value."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from exchange.errors import ValidationFailed
from exchange.ingest._schemas import PartnerRecordV1, PartnerRecordV2, decode_v1, decode_v2, idempotency_key
from exchange.settings import IngestSettings
from exchange.tokenize import EARLIEST_DOB

HINTS = IngestSettings().schema_hints


def v1_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": "partner-a",
        "record_type": "encounter",
        "patient": {"first_name": "Sam", "last_name": "Lee", "dob": "1990-01-01", "ssn": "123-45-6789"},
        "payload": {"example": True},
    }
    body.update(overrides)
    return body


def v2_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": "partner-b",
        "record_kind": "claim",
        "schema_hint": "partnerA.v2",
        "patient": {"given_name": "Sam", "family_name": "Lee", "dob": "1990-01-01"},
        "payload": {"example": True},
    }
    body.update(overrides)
    return body


def encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def v1_error(body: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        decode_v1(body if isinstance(body, bytes) else encode(body))
    return info.value


def v2_error(body: Any, hints: tuple[str, ...] = HINTS) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        decode_v2(body if isinstance(body, bytes) else encode(body), hints)
    return info.value


# -- accepted -------------------------------------------------------------------------------


def test_a_valid_v1_body_decodes_to_typed_fields() -> None:
    record = decode_v1(encode(v1_body()))
    assert isinstance(record, PartnerRecordV1)
    assert record.source == "partner-a"
    assert record.record_type == "encounter"
    assert record.patient.dob == dt.date(1990, 1, 1)
    assert record.patient.ssn == "123-45-6789"
    assert record.payload == {"example": True}


@pytest.mark.parametrize("record_type", ["encounter", "claim", "lab_result"])
def test_every_v1_record_type_of_the_runtime_enum_is_accepted(record_type: str) -> None:
    assert decode_v1(encode(v1_body(record_type=record_type))).record_type == record_type


def test_a_valid_v2_body_decodes_and_ssn_is_optional() -> None:
    record = decode_v2(encode(v2_body()), HINTS)
    assert isinstance(record, PartnerRecordV2)
    assert (record.record_kind, record.schema_hint) == ("claim", "partnerA.v2")
    assert record.patient.ssn is None


def test_the_schema_hint_set_is_configuration() -> None:
    body = encode(v2_body(schema_hint="partnerZ.v9"))
    assert decode_v2(body, ("partnerZ.v9",)).schema_hint == "partnerZ.v9"
    assert v2_error(body).field == "schema_hint"


@pytest.mark.parametrize("source", ["a", "A", "0", "partner-a", "Partner_A.v2", "a.b.c", "x" * 64])
def test_object_key_safe_sources_are_accepted(source: str) -> None:
    assert decode_v1(encode(v1_body(source=source))).source == source


# -- rejected, with the field path ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in v1_body().items() if k != "source"}, "source"),
        ({k: v for k, v in v1_body().items() if k != "record_type"}, "record_type"),
        ({k: v for k, v in v1_body().items() if k != "patient"}, "patient"),
        ({k: v for k, v in v1_body().items() if k != "payload"}, "payload"),
        (v1_body(patient={"last_name": "Lee", "dob": "1990-01-01"}), "patient.first_name"),
        (v1_body(patient={"first_name": "Sam", "dob": "1990-01-01"}), "patient.last_name"),
        (v1_body(patient={"first_name": "Sam", "last_name": "Lee"}), "patient.dob"),
        (v1_body(record_type="Encounter"), "record_type"),
        (v1_body(record_type="referral"), "record_type"),
        (v1_body(patient={"first_name": "Sam", "last_name": "Lee", "dob": "1990-13-01"}), "patient.dob"),
        (v1_body(patient={"first_name": "Sam", "last_name": "Lee", "dob": "01/02/1990"}), "patient.dob"),
        (v1_body(patient={"first_name": "Sam", "last_name": "Lee", "dob": "1990-02-30"}), "patient.dob"),
        (v1_body(patient={"first_name": "  ", "last_name": "Lee", "dob": "1990-01-01"}), "patient.first_name"),
        (v1_body(patient={"first_name": "Sam", "last_name": "", "dob": "1990-01-01"}), "patient.last_name"),
        (v1_body(patient={"first_name": "Sam", "last_name": "Lee", "dob": "1990-01-01", "mrn": "x"}), "patient.mrn"),
        (v1_body(extra="x"), "extra"),
        (v1_body(payload=[1, 2]), "payload"),
        (v1_body(payload="text"), "payload"),
        (v1_body(payload=None), "payload"),
        (v1_body(source="../x"), "source"),
        (v1_body(source="A/B"), "source"),
        (v1_body(source=""), "source"),
        (v1_body(source="x" * 65), "source"),
        (v1_body(source="a..b"), "source"),
        (v1_body(source=".hidden"), "source"),
        (v1_body(source="-dash"), "source"),
        (v1_body(source="a b"), "source"),
        (v1_body(source=7), "source"),
    ],
)
def test_an_invalid_v1_body_names_the_failing_field(body: dict[str, Any], field: str) -> None:
    assert v1_error(body).field == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in v2_body().items() if k != "record_kind"}, "record_kind"),
        ({k: v for k, v in v2_body().items() if k != "schema_hint"}, "schema_hint"),
        (v2_body(patient={"family_name": "Lee", "dob": "1990-01-01"}), "patient.given_name"),
        (v2_body(patient={"given_name": "Sam", "dob": "1990-01-01"}), "patient.family_name"),
        (v2_body(record_kind="bad_kind"), "record_kind"),
        (v2_body(schema_hint="partnerC.v1"), "schema_hint"),
        (v2_body(patient={"given_name": "Sam", "family_name": "Lee", "dob": "1990-01-01", "zip": "1"}), "patient.zip"),
        (v2_body(patient={"first_name": "Sam", "family_name": "Lee", "dob": "1990-01-01"}), "patient.first_name"),
        (v2_body(record_type="claim"), "record_type"),
        (v2_body(patient={"given_name": "\t", "family_name": "Lee", "dob": "1990-01-01"}), "patient.given_name"),
    ],
)
def test_an_invalid_v2_body_names_the_failing_field(body: dict[str, Any], field: str) -> None:
    assert v2_error(body).field == field


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"[1, 2]", "body: Expected `object`, got `array`"),
        (b'"text"', "body: Expected `object`, got `str`"),
        (b"{not json", "body is not valid JSON"),
        (b"", "body is not valid JSON"),
        (b'{"source": "\xff\xfe"}', "body is not valid UTF-8"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_rejected_without_a_field(raw: bytes, detail: str) -> None:
    for error in (v1_error(raw), v2_error(raw)):
        assert error.field is None
        assert error.detail == detail
        assert error.status == 400


def test_a_moderately_nested_payload_is_accepted() -> None:
    nested: Any = "leaf"
    for _ in range(100):
        nested = {"n": [nested]}
    assert decode_v1(encode(v1_body(payload=nested))).payload == nested


@pytest.mark.parametrize("depth", [5_000, 400_000])
def test_a_payload_nested_beyond_the_recursion_limit_is_a_validation_error_not_a_crash(depth: int) -> None:
    deep = b'"payload": {"x": ' + b"[" * depth + b"]" * depth + b"}"
    v1 = encode(v1_body(payload={})).replace(b'"payload": {}', deep)
    v2 = encode(v2_body(payload={})).replace(b'"payload": {}', deep)
    for error in (v1_error(v1), v2_error(v2)):
        assert error.detail == "body is nested too deeply"
        assert error.field is None


# -- property: errors never quote the submitted value --------------------------------------

# A marker prefix keeps the value from being a substring of a rule text by accident
# ("pattern", "a"); the rest is arbitrary text, including quotes and control characters.
_marked = st.text(max_size=30).map(lambda t: f"Qzx{t}")
_big_ints = st.integers(min_value=10**6, max_value=10**12)


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    head, _, tail = path.partition(".")
    if tail:
        body[head] = {**body[head], tail: value}
    else:
        body[head] = value
    return body


def _assert_not_echoed(error: ValidationFailed, value: Any) -> None:
    shown = f"{error.detail}|{error.field}|{error}"
    assert str(value) not in shown
    assert json.dumps(value) not in shown


@given(
    path=st.sampled_from(["source", "record_type", "patient.dob", "patient.first_name", "patient.last_name",
                          "patient.ssn"]),
    value=st.one_of(_marked, _marked.map(lambda v: v + "y" * 200), _big_ints),
)
def test_v1_error_messages_never_contain_the_submitted_value(path: str, value: Any) -> None:
    try:
        decode_v1(encode(_set(v1_body(), path, value)))
    except ValidationFailed as error:
        _assert_not_echoed(error, value)


@given(
    path=st.sampled_from(["source", "record_kind", "schema_hint", "patient.dob", "patient.given_name",
                          "patient.family_name", "patient.ssn"]),
    value=st.one_of(_marked, _marked.map(lambda v: v + "y" * 200), _big_ints),
)
def test_v2_error_messages_never_contain_the_submitted_value(path: str, value: Any) -> None:
    try:
        decode_v2(encode(_set(v2_body(), path, value)), HINTS)
    except ValidationFailed as error:
        _assert_not_echoed(error, value)


@given(key=st.from_regex(r"\A[a-z_]{1,20}\Z"), value=_marked)
def test_unknown_field_errors_name_the_field_but_never_its_value(key: str, value: str) -> None:
    assume(key not in v1_body()["patient"])
    error = v1_error(v1_body(patient={**v1_body()["patient"], key: value}))
    assert error.field == f"patient.{key}"
    assert value not in f"{error.detail}|{error}"


# -- property: bodies round-trip --------------------------------------------------------------

_sources = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z").filter(lambda s: ".." not in s)
_names = st.text(min_size=1, max_size=200).filter(str.strip)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
_payloads = st.dictionaries(st.text(max_size=12), _json_values, max_size=5)
_kinds = st.sampled_from(["encounter", "claim", "lab_result"])
_ssns = st.one_of(st.none(), st.text(max_size=64))
_dobs = st.dates(min_value=EARLIEST_DOB, max_value=dt.date(2020, 12, 31))  # plausible: ingest takes them


@given(source=_sources, kind=_kinds, first=_names, last=_names, dob=_dobs, ssn=_ssns, payload=_payloads)
def test_a_v1_body_round_trips(
    source: str, kind: str, first: str, last: str, dob: dt.date, ssn: str | None, payload: dict[str, Any]
) -> None:
    patient: dict[str, Any] = {"first_name": first, "last_name": last, "dob": dob.isoformat(), "ssn": ssn}
    body = {"source": source, "record_type": kind, "patient": patient, "payload": payload}
    record = decode_v1(encode(body))
    assert msgspec.to_builtins(record) == body
    assert decode_v1(msgspec.json.encode(record)) == record


@given(
    source=_sources, kind=_kinds, hint=st.sampled_from(HINTS), given_name=_names, family=_names, dob=_dobs,
    ssn=_ssns, payload=_payloads,
)
def test_a_v2_body_round_trips(
    source: str, kind: str, hint: str, given_name: str, family: str, dob: dt.date, ssn: str | None,
    payload: dict[str, Any],
) -> None:
    patient: dict[str, Any] = {"given_name": given_name, "family_name": family, "dob": dob.isoformat(), "ssn": ssn}
    body = {"source": source, "record_kind": kind, "schema_hint": hint, "patient": patient, "payload": payload}
    record = decode_v2(encode(body), HINTS)
    assert msgspec.to_builtins(record) == body
    assert decode_v2(msgspec.json.encode(record), HINTS) == record


@pytest.mark.parametrize("key", ["a" * 8, "Q" * 255, "!~key-1_2.3/4", "01J8ZQ0X7Y9K3M5N"])
def test_an_idempotency_key_of_8_to_255_visible_ascii_characters_is_taken(key: str) -> None:
    assert idempotency_key(key) == key


@pytest.mark.parametrize(("key", "rule"), [
    (None, "required header is missing"),
    ("a" * 7, "at least 8"),
    ("Q" * 256, "at most 255"),
    ("has a space", "pattern"),
    ("tab\there-123", "pattern"),
    ("non-ascii-ké", "pattern"),
    ("newline-at-end\n", "pattern"),
])
def test_a_bad_idempotency_key_is_a_400_naming_the_header_and_rule_not_the_value(key: str | None, rule: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        idempotency_key(key)
    assert caught.value.field == "Idempotency-Key"
    assert rule in str(caught.value)
    if key:
        assert key not in str(caught.value)


# -- the quality gate's date-of-birth rule, at the door ------------------------------------------


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@pytest.mark.parametrize("dob", ["1849-12-31", "0001-01-01", "9999-12-31", "future"])
def test_an_implausible_date_of_birth_is_a_400_naming_patient_dob_not_the_value(dob: str) -> None:
    value = (_utc_today() + dt.timedelta(days=2)).isoformat() if dob == "future" else dob
    for error in (v1_error(v1_body(patient={"first_name": "Sam", "last_name": "Lee", "dob": value})),
                  v2_error(v2_body(patient={"given_name": "Sam", "family_name": "Lee", "dob": value}))):
        assert error.field == "patient.dob"
        assert value not in error.detail


@pytest.mark.parametrize("dob", ["1850-01-01", "today"])
def test_the_edges_of_the_plausible_range_are_accepted(dob: str) -> None:
    value = _utc_today().isoformat() if dob == "today" else dob
    assert decode_v1(encode(v1_body(patient={"first_name": "S", "last_name": "L", "dob": value}))).patient.dob
    assert decode_v2(encode(v2_body(patient={"given_name": "S", "family_name": "L", "dob": value})), HINTS)


@given(st.dates())
def test_ingest_refuses_exactly_the_dates_of_birth_the_quality_gate_would_dead_letter(dob: dt.date) -> None:
    from exchange.normalize import RecordProcessor, StageFailure

    raw = encode(v1_body(patient={"first_name": "Sam", "last_name": "Lee", "dob": dob.isoformat()}))
    try:
        decode_v1(raw)
        at_the_door = None
    except ValidationFailed as exc:
        at_the_door = exc.field
    try:
        RecordProcessor.identifiers(RecordProcessor.parse(raw))  # the gate itself: no I/O
        at_the_gate = None
    except StageFailure as exc:
        at_the_gate = exc.error_type
    assert (at_the_door is None) == (at_the_gate is None), (at_the_door, at_the_gate)
    if at_the_gate is not None:
        assert (at_the_door, at_the_gate) == ("patient.dob", "ImplausibleDob")
