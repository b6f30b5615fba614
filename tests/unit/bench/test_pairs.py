"""Pairwise linkage scores (exchange_bench.pairs), counted by hand on small clusterings."""

from __future__ import annotations

import pytest

from exchange_bench.pairs import clustered_pairs, entity_pairs, pair, score

# Entities: x has three records (3 true pairs), y two (1 pair), z one. Record x3 was refused.
TRUTH = entity_pairs({"x1": "x", "x2": "x", "x3": "x", "y1": "y", "y2": "y", "z1": "z"})
ADMITTED = frozenset(p for p in TRUTH if "x3" not in p)


def test_the_true_pairs_are_every_pair_within_an_entity() -> None:
    assert sorted(TRUTH) == [("x1", "x2"), ("x1", "x3"), ("x2", "x3"), ("y1", "y2")]
    assert pair("b", "a") == ("a", "b")
    assert sorted(clustered_pairs({"a": "1", "b": "2", "c": "1"})) == [("a", "c")]


def test_a_clustering_is_scored_against_all_and_admitted_true_pairs() -> None:
    # x1+x2 right, y1+z1 wrong, y2 alone: 1 true positive, 1 false positive.
    result = score({"x1": "p", "x2": "p", "y1": "q", "z1": "q", "y2": "r"}, TRUTH, ADMITTED)
    assert result["true_positive_pairs"] == 1 and result["false_positive_pairs"] == 1
    assert result["precision"] == 0.5
    assert result["recall_all"] == 0.25 and result["recall_admitted"] == 0.5
    assert result["f1_all"] == pytest.approx(2 * 0.5 * 0.25 / 0.75, abs=1e-4)
    assert result["f1_admitted"] == 0.5
    assert (result["persons"], result["largest_person"]) == (3, 2)


def test_nothing_linked_is_precise_and_recalls_nothing() -> None:
    result = score({"x1": "a", "x2": "b"}, TRUTH, ADMITTED)
    assert (result["precision"], result["recall_all"], result["f1_all"]) == (1.0, 0.0, 0.0)


def test_a_recall_over_no_true_pairs_is_undefined() -> None:
    result = score({}, frozenset(), frozenset())
    assert result["recall_all"] is None and result["f1_admitted"] is None
    assert (result["persons"], result["largest_person"]) == (0, 0)
