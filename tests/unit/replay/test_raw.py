"""Reading raw objects back as events: key parsing, timestamps and version inference (pure)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from hypothesis import given
from hypothesis import strategies as st

from exchange.adapters.objectstore import ObjectInfo
from exchange.events import RecordIngestedV1, RecordIngestedV2, format_timestamp
from exchange.events._ids import uuid7
from exchange.replay._raw import _occurred_at, build_replay_event, infer_version, parse_key

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
