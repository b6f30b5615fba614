from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from exchange.normalize import OffsetBook

TP = ("record.ingested.v1", 0)


def test_commit_stops_at_the_lowest_unfinished_record() -> None:
    book = OffsetBook()
    book.assign([TP])
    for offset in (10, 11, 12, 13):
        assert book.started(TP, offset)
    book.finished(TP, 12)
    book.finished(TP, 13)
    assert book.committable() == {TP: 10}
    book.finished(TP, 10)
    assert book.committable() == {TP: 11}
    book.mark_committed({TP: 11})
    assert book.committable() == {}
    book.finished(TP, 11)
    assert book.committable() == {TP: 14}


def test_records_of_partitions_we_do_not_own_are_refused() -> None:
    book = OffsetBook()
    assert not book.started(TP, 1)
    book.assign([TP])
    assert book.started(TP, 1)


def test_revocation_returns_the_safe_offset_and_forgets_the_partition() -> None:
    book = OffsetBook()
    book.assign([TP])
    book.started(TP, 5)
    book.started(TP, 6)
    book.finished(TP, 6)
    assert book.revoke([TP]) == {TP: 5}
    # In-flight work finishing after the revocation must not be committed by us.
    assert not book.finished(TP, 5)
    assert book.committable() == {}


@given(st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=60, unique=True), st.randoms())
def test_the_committed_offset_never_passes_unfinished_work(offsets: list[int], rnd: random.Random) -> None:
    book = OffsetBook()
    book.assign([TP])
    ordered = sorted(offsets)
    for o in ordered:
        book.started(TP, o)
    unfinished = set(ordered)
    order = ordered[:]
    rnd.shuffle(order)
    for o in order[: len(order) // 2]:
        book.finished(TP, o)
        unfinished.discard(o)
        safe = book.committable().get(TP)
        if safe is not None:
            assert all(u >= safe for u in unfinished)

