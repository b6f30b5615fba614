"""The evaluation's counts and scores from the service's answers (exchange_bench.linkage_eval.report)."""

from __future__ import annotations

from exchange_bench.linkage_eval.dataset import Febrl4, FebrlRecord
from exchange_bench.linkage_eval.ingest import Answer
from exchange_bench.linkage_eval.report import counts, markdown, scores

PATIENT = {"given_name": "a", "family_name": "b", "dob": "2000-01-01"}
# Three true pairs. The mapping refuses rec-1-dup-0 and rec-2-dup-0.
DATA = Febrl4(
    records=(
        FebrlRecord("rec-0-org", "a", PATIENT, None), FebrlRecord("rec-0-dup-0", "b", PATIENT, None),
        FebrlRecord("rec-1-org", "a", PATIENT, None), FebrlRecord("rec-1-dup-0", "b", {}, "given_name missing"),
        FebrlRecord("rec-2-org", "a", PATIENT, None), FebrlRecord("rec-2-dup-0", "b", {}, "dob not a date"),
    ),
    truth=frozenset({("rec-0-dup-0", "rec-0-org"), ("rec-1-dup-0", "rec-1-org"), ("rec-2-dup-0", "rec-2-org")}),
)


def test_refusals_are_compared_record_by_record() -> None:
    # The service refused rec-1-dup-0 as the mapping does, accepted rec-2-dup-0 (which the
    # mapping refuses) and refused rec-2-org (which it admits); rec-0-dup-0 got a 503.
    answers = {
        "rec-0-org": Answer(202, "r0"), "rec-0-dup-0": Answer(503, None), "rec-1-org": Answer(202, "r1"),
        "rec-1-dup-0": Answer(400, None), "rec-2-org": Answer(400, None), "rec-2-dup-0": Answer(202, "r2d"),
    }
    got = counts(DATA, answers)
    assert (got["sent"], got["accepted"], got["refused_by_service"], got["refused_by_mapping"]) == (6, 3, 2, 2)
    assert got["refusal_disagreements"] == 2
    assert got["refusal_disagreements_first"] == ["rec-2-dup-0", "rec-2-org"]
    assert got["refused_by_mapping_reasons"] == {"given_name missing": 1, "dob not a date": 1}
    assert got["other_statuses"] == {"503": 1}
    assert (got["true_pairs"], got["admitted_pairs"]) == (3, 1)


def test_what_was_read_back_is_scored_under_the_febrl_ids() -> None:
    answers = {"rec-0-org": Answer(202, "r0"), "rec-0-dup-0": Answer(202, "r0d"), "rec-1-org": Answer(202, "r1"),
               "rec-2-org": Answer(202, "r2")}
    # r0 and r0d share a person (a true pair); r1 and r2 share one (not a pair); one person unread.
    got = scores(DATA, answers, {"r0": "p", "r0d": "p", "r1": "q", "r2": "q"})
    assert (got["true_positive_pairs"], got["false_positive_pairs"]) == (1, 1)
    assert (got["recall_admitted"], got["recall_all"], got["precision"]) == (1.0, 0.3333, 0.5)
    assert scores(DATA, answers, {"r0": "p", "r0d": None})["true_positive_pairs"] == 0


def test_the_table_shows_absent_persons_as_not_available() -> None:
    seed = scores(DATA, {"rec-0-org": Answer(202, "r0"), "rec-0-dup-0": Answer(202, "r0d")}, {"r0": "t", "r0d": "t"})
    results = {
        "seed_token": seed, "persons": None, "persons_after_rederive": None,
        "counts": {"sent": 6, "accepted": 4, "refused_by_service": 2, "refused_by_mapping": 2,
                   "refusal_disagreements": 0, "dead_lettered": 0, "read_back": 4, "true_pairs": 3,
                   "admitted_pairs": 1},
        "times": {"records_per_s": 40.0, "run_s": 0.1, "rederive_s": None},
    }
    table = markdown(results)
    assert "| seed token (equal patient_token) | 1.0000 | 0.3333 | 1.0000 |" in table
    assert "| persons (equal person_id) | n/a | n/a | n/a | n/a | n/a |" in table
    assert "re-resolution of persons: n/a" in table
