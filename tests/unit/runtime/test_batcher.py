"""Batcher: concurrent submits share a batch; answers, failures and keys stay per item."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.runtime.batcher import Batcher


class Down(Exception):
    pass


class Recorder:
    """A fake batch call: doubles each item, remembers the batches it was given."""

    def __init__(self, *, bad: int | None = None, down: bool = False, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.bad = bad
        self.down = down
        self.delay = delay
        self.concurrent = 0
        self.peak = 0

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.concurrent += 1
        self.peak = max(self.peak, self.concurrent)
        try:
            await asyncio.sleep(self.delay)
            if self.down:
                raise Down
            if self.bad is not None and self.bad in items:
                raise ValueError("bad item in batch")
            return [i * 2 for i in items]
        finally:
            self.concurrent -= 1


async def test_a_lone_item_goes_alone_and_gets_its_answer() -> None:
    run = Recorder()
    batcher = Batcher(run, key=lambda i: i)
    assert await batcher.submit(21) == 42
    assert run.batches == [[21]]


async def test_items_submitted_together_share_one_batch() -> None:
    run = Recorder()
    batcher = Batcher(run, key=lambda i: i, max_in_flight=1)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    assert results == [i * 2 for i in range(10)]
    assert run.batches == [list(range(10))]


async def test_items_arriving_while_a_batch_is_in_flight_form_the_next_batch() -> None:
    run = Recorder(delay=0.02)
    batcher = Batcher(run, key=lambda i: i, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.005)  # the first batch is in flight now
    later = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6)]
    assert await asyncio.gather(first, *later) == [0, 2, 4, 6, 8, 10]
    assert run.batches == [[0], [1, 2, 3, 4, 5]]


async def test_batches_are_capped_and_in_flight_batches_bounded() -> None:
    run = Recorder(delay=0.01)
    batcher = Batcher(run, key=lambda i: i, max_batch=4, max_in_flight=2)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
    assert results == [i * 2 for i in range(20)]
    assert max(len(b) for b in run.batches) <= 4
    assert run.peak <= 2
    assert sorted(i for b in run.batches for i in b) == list(range(20))


async def test_with_a_batch_in_flight_a_straggler_waits_for_it_instead_of_going_alone() -> None:
    run = Recorder(delay=0.03)
    batcher = Batcher(run, key=lambda i: i, max_in_flight=2)
    first = [asyncio.ensure_future(batcher.submit(i)) for i in range(4)]
    await asyncio.sleep(0.005)  # a batch of four is in flight; a second slot is free
    straggler = asyncio.ensure_future(batcher.submit(4))
    await asyncio.sleep(0.01)
    assert run.batches == [[0, 1, 2, 3]]  # one item would not match the batch in flight
    assert not straggler.done()
    assert await asyncio.gather(*first, straggler) == [0, 2, 4, 6, 8]
    assert run.batches == [[0, 1, 2, 3], [4]]  # it went when the first batch was done
    assert run.peak == 1


async def test_with_a_batch_in_flight_as_many_waiting_open_a_second_batch_at_once() -> None:
    run = Recorder(delay=0.03)
    batcher = Batcher(run, key=lambda i: i, max_in_flight=2)
    first = [asyncio.ensure_future(batcher.submit(i)) for i in range(4)]
    await asyncio.sleep(0.005)
    second = [asyncio.ensure_future(batcher.submit(i)) for i in range(4, 7)]
    await asyncio.sleep(0.005)
    assert len(run.batches) == 1  # three waiting: not yet
    second.append(asyncio.ensure_future(batcher.submit(7)))
    await asyncio.sleep(0.005)
    assert run.batches == [[0, 1, 2, 3], [4, 5, 6, 7]]  # four match four: in flight together
    assert run.peak == 2
    assert await asyncio.gather(*first, *second) == [i * 2 for i in range(8)]


async def test_a_batch_in_flight_at_the_cap_lets_a_full_batch_open_beside_it() -> None:
    run = Recorder(delay=0.03)
    batcher = Batcher(run, key=lambda i: i, max_batch=3, max_in_flight=2)
    waiting = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0.005)
    waiting += [asyncio.ensure_future(batcher.submit(i)) for i in range(3, 9)]
    await asyncio.sleep(0.005)
    assert run.batches == [[0, 1, 2], [3, 4, 5]]
    assert await asyncio.gather(*waiting) == [i * 2 for i in range(9)]
    assert run.batches[2] == [6, 7, 8]


async def test_one_key_never_appears_twice_in_a_batch() -> None:
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run, key=lambda i: i % 3, max_in_flight=1)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(9)))
    assert results == [i * 2 for i in range(9)]
    for batch in run.batches:
        assert len({i % 3 for i in batch}) == len(batch)


async def test_a_bad_item_fails_alone_and_the_others_get_their_answers() -> None:
    run = Recorder(bad=3)
    batcher = Batcher(run, key=lambda i: i)
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(6)), return_exceptions=True)
    assert isinstance(outcomes[3], ValueError)
    assert [o for n, o in enumerate(outcomes) if n != 3] == [0, 2, 4, 8, 10]


async def test_an_outage_fails_the_whole_batch_at_once_without_one_by_one_retries() -> None:
    run = Recorder(down=True)
    batcher = Batcher(run, key=lambda i: i, fail_together=(Down,))
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(o, Down) for o in outcomes)
    assert len(run.batches) == 1


async def test_a_cancelled_waiter_does_not_disturb_the_others() -> None:
    run = Recorder(delay=0.02)
    batcher = Batcher(run, key=lambda i: i, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.005)
    doomed = asyncio.ensure_future(batcher.submit(1))
    kept = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)
    doomed.cancel()
    assert await first == 0
    assert await kept == 4
    with pytest.raises(asyncio.CancelledError):
        await doomed


@settings(max_examples=50, deadline=None)
@given(items=st.lists(st.integers(min_value=0, max_value=20), max_size=40),
       max_batch=st.integers(min_value=1, max_value=8), max_in_flight=st.integers(min_value=1, max_value=3))
def test_every_item_gets_exactly_its_own_answer(items: list[int], max_batch: int, max_in_flight: int) -> None:
    async def scenario() -> None:
        run = Recorder()
        batcher = Batcher(run, key=lambda i: i, max_batch=max_batch, max_in_flight=max_in_flight)
        assert await asyncio.gather(*(batcher.submit(i) for i in items)) == [i * 2 for i in items]
        assert sorted(i for b in run.batches for i in b) == sorted(items)
        for batch in run.batches:
            assert len(batch) <= max_batch
            assert len(set(batch)) == len(batch)

    asyncio.run(scenario())


async def test_waiters_of_a_batch_cancelled_in_flight_are_cancelled_too() -> None:
    started = asyncio.Event()

    async def slow(items: Sequence[int]) -> list[int]:
        started.set()
        await asyncio.sleep(10)
        return list(items)

    batcher = Batcher(slow, key=lambda i: i)
    waiter = asyncio.ensure_future(batcher.submit(1))
    await started.wait()
    flushes = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "Batcher._flush"]  # type: ignore[union-attr]
    assert len(flushes) == 1
    flushes[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_a_batch_call_that_answers_the_wrong_count_is_retried_item_by_item() -> None:
    calls: list[list[int]] = []

    async def lossy(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        return [i * 2 for i in items][: max(1, len(items) - 1)]  # drops one answer of a batch

    batcher = Batcher(lossy, key=lambda i: i)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(3))) == [0, 2, 4]
    assert calls == [[0, 1, 2], [0], [1], [2]]
