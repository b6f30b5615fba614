"""The chaos harness's pure parts: its records carry every canary class and the sweep's
patterns find every record's identifiers; the answers file is judged as the checker says; the
schedule causes every kind each round."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from exchange.ingest._schemas import decode_v2
from exchange_bench.chaos.answers import AnswerLog
from exchange_bench.chaos.faults import FAULT_KINDS, schedule
from exchange_bench.chaos.records import CANARY_CLASSES, canaries, leaks, record_body
from exchange_bench.cli import _kinds

REPO = Path(__file__).resolve().parents[3]


def test_the_packaged_canaries_are_the_suites_list() -> None:
    packaged = REPO / "benchmarks/src/exchange_bench/chaos/phi-canaries.json"
    assert json.loads(packaged.read_text()) == json.loads((REPO / "tests/data/phi-canaries.json").read_text())
    assert len(CANARY_CLASSES) == 18


@pytest.mark.parametrize("n", [0, 1, 25, 26, 9_999, 10_000, 123_456])
def test_every_record_is_valid_carries_every_class_and_is_found_by_the_sweep(n: int) -> None:
    body = record_body("chaos-x", n)
    record = decode_v2(body, ("partnerB.v1",))  # ingest takes it (a plausible date of birth included)
    assert set(leaks(body.decode())) == set(canaries())
    for field in ("given_name", "family_name", "dob", "ssn"):
        value = getattr(record.patient, field)
        assert leaks(str(value)), f"{field} {value!r} of record {n} would escape the sweep"
        assert leaks(str(value).upper() if field.endswith("name") else str(value))


def test_records_name_different_patients() -> None:
    patients = {json.dumps(json.loads(record_body("s", n))["patient"], sort_keys=True) for n in range(2000)}
    assert len(patients) == 2000


@pytest.mark.parametrize("text", [
    "latency 0.0093127 s", "2026-12-05T19:51:12Z", "sha256 9876543290ab", "record 1f2e", "1939-01-01",
])
def test_what_is_not_a_canary_is_no_hit(text: str) -> None:
    assert leaks(text) == {}


def _line(key: str, status: int, attempt: int = 1, **extra: Any) -> str:
    return json.dumps({"key": key, "n": 0, "attempt": attempt, "status": status, "ct": extra.pop("ct", ""),
                       "t": 1.0, **extra}) + "\n"


def test_the_answers_file_is_read_as_it_grows_and_judged(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    problem = json.dumps({"type": "about:blank", "title": "Service Unavailable", "status": 503})
    path.write_text(_line("a", 503, ct="application/problem+json", body=problem) + _line("a", 0, 2)
                    + _line("a", 202, 3, record_id="r1") + '{"key": "b", "par')  # the last line still being written
    log = AnswerLog(path)
    log.refresh()
    assert log.accepted == {"a": "r1"}
    assert (log.attempts, log.retries) == (3, 2)
    assert log.not_problem == []
    log.refresh()  # nothing new: the half line waits
    assert log.attempts == 3
    path.write_text(path.read_text().rsplit("\n", 1)[0] + "\n" + _line("b", 500, ct="text/plain", body="boom")
                    + _line("a", 202, 4, record_id="r2") + _line("c", 503, ct="application/problem+json", body="{}"))
    log.refresh()
    summary = log.summary()
    assert summary["server_errors_other_than_503"] == 1
    assert summary["non_202_not_problem_json"] == 2  # the 500 in text, and a problem type without members
    assert summary["keys_with_two_record_ids"] == 1
    assert log.unanswered() == ["c"]
    assert log.bodies == [problem, "boom", "{}"]


def test_the_schedule_causes_every_kind_each_round_in_another_order() -> None:
    plan = schedule(FAULT_KINDS, 3)
    assert len(plan) == 3 * len(FAULT_KINDS)
    rounds = [plan[i:i + len(FAULT_KINDS)] for i in range(0, len(plan), len(FAULT_KINDS))]
    assert all(sorted(r) == sorted(FAULT_KINDS) for r in rounds)
    assert rounds[0] != rounds[1]


def test_an_unknown_fault_kind_is_refused_by_name() -> None:
    assert _kinds("kafka, s3") == ("kafka", "s3")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown"):
        _kinds("kafka,disk")


def test_the_close_name_tokens_are_spread_like_a_populations() -> None:
    # The person step reads a name's sound (NYSIIS) and its first four letters: were they one
    # for every record, each new record would have hundreds of candidates (docs/performance.md).
    from exchange.linkage._normalize import _name
    from exchange.linkage._recipes import _close_name_codes

    for field in ("given_name", "family_name"):
        names = {json.loads(record_body("s", n))["patient"][field] for n in range(0, 70_000, 7)}
        shared = Counter(code for name in names for code in _close_name_codes(_name(name)))
        assert len(names) > 1_000 and max(shared.values()) <= len(names) // 20, (field, shared.most_common(3))
