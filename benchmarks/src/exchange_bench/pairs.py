"""Pairwise linkage scores: one definition for the offline research and the end-to-end evaluation.

Two records are linked when they end in one cluster (a person, or equal seed tokens). Against
the true pairs: recall over every true pair (a record that was refused, or never read back,
links to nothing) and over the true pairs whose two records the ingest contract admits;
precision over the pairs put into one cluster.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping
from typing import Any

__all__ = ("Pair", "clustered_pairs", "entity_pairs", "pair", "score")

Pair = tuple[str, str]
"""Two record ids, the smaller first."""


def pair(a: str, b: str) -> Pair:
    return (a, b) if a < b else (b, a)


def entity_pairs(entity_of: Mapping[str, str]) -> frozenset[Pair]:
    """Every pair of records of one entity: the truth, when each record names its entity."""
    return frozenset(clustered_pairs(entity_of))


def clustered_pairs(cluster_of: Mapping[str, str]) -> Iterator[Pair]:
    """Every pair of records put into one cluster."""
    members: dict[str, list[str]] = defaultdict(list)
    for record, cluster in cluster_of.items():
        members[cluster].append(record)
    for records in members.values():
        for a, b in itertools.combinations(records, 2):
            yield pair(a, b)


def _f1(precision: float, recall: float | None) -> float | None:
    if recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def score(cluster_of: Mapping[str, str], truth: Collection[Pair], admitted_truth: Collection[Pair]) -> dict[str, Any]:
    """Scores of a clustering (record id -> cluster, for the records that have one).

    ``truth``: every true pair; ``admitted_truth``: those whose two records were admitted.
    Precision is 1.0 when nothing was linked; a recall over no true pairs is None.
    """
    true = truth if isinstance(truth, (set, frozenset)) else frozenset(truth)
    tp = fp = 0
    for linked in clustered_pairs(cluster_of):
        if linked in true:
            tp += 1
        else:
            fp += 1
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall_admitted = tp / len(admitted_truth) if admitted_truth else None
    recall_all = tp / len(true) if true else None
    sizes: dict[str, int] = defaultdict(int)
    for cluster in cluster_of.values():
        sizes[cluster] += 1
    f1_admitted, f1_all = _f1(precision, recall_admitted), _f1(precision, recall_all)
    return {
        "precision": round(precision, 5),
        "recall_admitted": None if recall_admitted is None else round(recall_admitted, 4),
        "recall_all": None if recall_all is None else round(recall_all, 4),
        "f1_admitted": None if f1_admitted is None else round(f1_admitted, 4),
        "f1_all": None if f1_all is None else round(f1_all, 4),
        "true_positive_pairs": tp,
        "false_positive_pairs": fp,
        "persons": len(sizes),
        "largest_person": max(sizes.values(), default=0),
    }
