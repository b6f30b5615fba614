"""Person ids through a rebuild: a component keeps the id most of its records had."""

from __future__ import annotations

import uuid

from exchange.persons._rebuild import Partition, label


def test_unchanged_components_keep_their_ids() -> None:
    old = {"r1": "p1", "r2": "p1", "r3": "p2"}
    person, absorbed = label({"r1": ["r1", "r2"], "r3": ["r3"]}, old)
    assert person == old
    assert absorbed == {}


def test_a_merge_keeps_the_majority_id_and_records_the_absorbed_one() -> None:
    old = {"r1": "p1", "r2": "p1", "r3": "p2"}
    person, absorbed = label({"r1": ["r1", "r2", "r3"]}, old)
    assert set(person.values()) == {"p1"}
    assert absorbed == {"p2": "p1"}


def test_a_tie_keeps_the_oldest_id() -> None:
    person, absorbed = label({"a": ["a", "b"]}, {"a": "p2", "b": "p1"})
    assert set(person.values()) == {"p1"}
    assert absorbed == {"p2": "p1"}


def test_a_split_keeps_the_id_where_most_records_stay_and_gives_the_rest_a_new_one() -> None:
    old = {"r1": "p1", "r2": "p1", "r3": "p1"}
    person, absorbed = label({"r1": ["r1", "r2"], "r3": ["r3"]}, old)
    assert person["r1"] == person["r2"] == "p1"
    assert person["r3"] != "p1" and uuid.UUID(person["r3"]).version == 7
    assert absorbed == {}


def test_union_find_groups_transitively() -> None:
    parts = Partition()
    parts.union("c", "b")
    parts.union("b", "a")
    parts.union("x", "y")
    groups = parts.components(["a", "b", "c", "x", "y", "z"])
    assert sorted(sorted(g) for g in groups.values()) == [["a", "b", "c"], ["x", "y"], ["z"]]
