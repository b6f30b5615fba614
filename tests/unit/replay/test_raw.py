"""Reading raw objects back as events: key parsing, timestamps and version inference (pure)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Literal

from hypothesis import given
from hypothesis import strategies as st

from exchange.adapters.objectstore import ObjectInfo
from exchange.events import RecordIngestedV1, RecordIngestedV2, format_timestamp
from exchange.events._ids import uuid7
from exchange.ingest import StoredObject
from exchange.ingest._schemas import decode_v1, decode_v2
from exchange.replay._raw import _occurred_at, build_replay_event, event_for, infer_version, parse_key, stored_shape
from exchange.replay._replay import _unchanged
from exchange.settings import IngestSettings

_INFO = ObjectInfo("k", 10, dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))


def test_a_record_key_names_its_source_and_its_record_id_in_canonical_spelling() -> None:
    rid = "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B"
    ref = parse_key(f"partner-a/{rid}.json")
    assert ref is not None
    assert (ref.source, ref.record_id) == ("partner-a", str(uuid.UUID(rid)))


def test_keys_that_are_not_records_are_not_parsed() -> None:
    rid = str(uuid.uuid4())
    for key in (f"partner-a/{rid}.txt", f"a/b/{rid}.json", f"../{rid}.json", f"bad..src/{rid}.json",
                "partner-a/" + rid.replace("-", "") + "----.json", f"_quarantine/{rid}", "partner-a/x.json"):
        assert parse_key(key) is None, key


_YEAR_10000_MS = 253_402_300_800_000


@given(st.integers(min_value=0, max_value=2**48 - 1))
def test_a_uuid7_record_occurred_at_its_own_millisecond(millis: int) -> None:
    rid = uuid.UUID(int=(millis << 80) | (0x7 << 76) | (0b10 << 62) | 12345)
    if millis < _YEAR_10000_MS:
        expected = format_timestamp(dt.datetime.fromtimestamp((rid.int >> 80) / 1000, tz=dt.UTC))
    else:  # no datetime can hold it: the object's own time instead of a crashed replay
        expected = format_timestamp(_INFO.last_modified)
    assert _occurred_at(str(rid), _INFO) == expected


def test_other_record_ids_fall_back_to_the_object_time() -> None:
    assert _occurred_at(str(uuid.uuid4()), _INFO) == format_timestamp(_INFO.last_modified)
    assert _occurred_at(str(uuid7()), _INFO) != format_timestamp(_INFO.last_modified)


def _raw(version: int) -> bytes:
    if version == 1:
        body = {"source": "s", "record_type": "claim", "patient": {"first_name": "A", "last_name": "B",
                                                                     "dob": "1990-01-01"}, "payload": {}}
    else:
        body = {"source": "s", "record_kind": "lab_result", "schema_hint": "partnerA.v2",
                "patient": {"given_name": "A", "family_name": "B", "dob": "1990-01-01"}, "payload": {}}
    return json.dumps(body).encode()


def test_auto_infers_the_version_from_the_shape_and_builds_the_same_event_every_time() -> None:
    rid = str(uuid7())
    ref = parse_key(f"s/{rid}.json")
    assert ref is not None
    v1, v2 = _raw(1), _raw(2)
    assert (infer_version(v1), infer_version(v2), infer_version(b"[]")) == ("1", "2", None)
    first = build_replay_event(ref, _INFO, v2, "raw-objects", "auto")
    assert isinstance(first, RecordIngestedV2)
    assert (first.record_kind, first.schema_hint) == ("lab_result", "partnerA.v2")
    assert build_replay_event(ref, _INFO, v2, "raw-objects", "auto") == first  # deterministic
    assert isinstance(build_replay_event(ref, _INFO, v1, "raw-objects", "auto"), RecordIngestedV1)
    assert isinstance(build_replay_event(ref, _INFO, v2, "raw-objects", "v1"), RecordIngestedV1)
    assert build_replay_event(ref, _INFO, v1, "raw-objects", "v2") == "not_v2_compatible"
    assert build_replay_event(ref, _INFO, b"not json", "raw-objects", "auto") == "unrecognized"


_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12).filter(str.strip)
_HINTS = IngestSettings().schema_hints


@st.composite
def _accepted(draw: st.DrawFn) -> tuple[bytes, StoredObject]:
    """A body ingest accepts, and the manifest row ingest writes for it: the version it was
    sent to and, for v2, the ``record_kind`` and ``schema_hint`` of its event (ingest/_routes.py)."""
    version = draw(st.sampled_from([1, 2]))
    patient: dict[str, object] = {("first_name" if version == 1 else "given_name"): draw(_NAMES),
                                  ("last_name" if version == 1 else "family_name"): draw(_NAMES),
                                  "dob": "1990-01-01"}
    if draw(st.booleans()):
        patient["ssn"] = "123-45-6789"
    body: dict[str, object] = {"source": "s", "patient": patient,
                               "payload": draw(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))}
    kind = hint = None
    if version == 1:
        body["record_type"] = draw(st.sampled_from(["encounter", "claim", "lab_result"]))
        raw = json.dumps(body).encode()
        decode_v1(raw)
    else:
        body["record_kind"] = draw(st.sampled_from(["encounter", "claim", "lab_result"]))
        body["schema_hint"] = draw(st.sampled_from(_HINTS))
        raw = json.dumps(body).encode()
        record = decode_v2(raw, _HINTS)
        kind, hint = record.record_kind, record.schema_hint
    return raw, StoredObject("etag", hashlib.sha256(raw).hexdigest(), len(raw), str(version), kind, hint)


@given(_accepted(), st.sampled_from(["v1", "v2", "auto"]))
def test_the_event_from_ingest_s_manifest_row_is_the_event_from_reading_the_object(
    accepted: tuple[bytes, StoredObject], emit: Literal["v1", "v2", "auto"]
) -> None:
    """Replay builds an unchanged object's event from what ingest kept (digest, size, the
    version and v2 fields it accepted the body as); for every body ingest accepts it must be
    the very event reading the object builds, skip reasons included."""
    raw, stored = accepted
    ref = parse_key(f"s/{uuid7()}.json")
    assert ref is not None
    kept = event_for(ref, _INFO, stored_shape(stored), stored.sha256, stored.size_bytes, "b", emit)
    assert kept == build_replay_event(ref, _INFO, raw, "b", emit)


def test_only_an_object_listed_as_ingest_stored_it_is_built_from_the_manifest() -> None:
    stored = StoredObject(etag="abc", sha256="0" * 64, size_bytes=10, event_version="1", record_kind=None,
                          schema_hint=None)
    at = _INFO.last_modified
    assert _unchanged(ObjectInfo("k", 10, at, "abc"), stored) is stored
    assert _unchanged(ObjectInfo("k", 10, at, "abd"), stored) is None  # rewritten: a new ETag
    assert _unchanged(ObjectInfo("k", 11, at, "abc"), stored) is None  # another size
    assert _unchanged(ObjectInfo("k", 10, at, None), stored) is None  # a store that lists no ETag
    assert _unchanged(ObjectInfo("k", 10, at, "abc"), None) is None  # no manifest row (an orphan)
