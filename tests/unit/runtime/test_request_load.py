"""Background work narrows to a trickle while the process serves requests, and only then."""

from __future__ import annotations

import asyncio

from exchange.runtime import RequestLoad
from exchange.runtime.load import TRICKLE_SLOTS


async def _peak_concurrency(load: RequestLoad, workers: int) -> int:
    running = peak = 0

    async def work() -> None:
        nonlocal running, peak
        async with load.background_slot():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(work() for _ in range(workers)))
    return peak


async def test_idle_process_runs_background_work_at_full_concurrency() -> None:
    load = RequestLoad(busy_at=8)
    for _ in range(7):
        load.enter()
    assert not load.busy
    assert await _peak_concurrency(load, 20) == 20


async def test_busy_process_runs_background_work_a_trickle_at_a_time_and_never_stops_it() -> None:
    load = RequestLoad(busy_at=8)
    for _ in range(8):
        load.enter()
    assert load.busy
    assert await _peak_concurrency(load, 20) == TRICKLE_SLOTS


async def test_the_burst_ending_gives_the_concurrency_back() -> None:
    load = RequestLoad(busy_at=2)
    load.enter()
    load.enter()
    assert await _peak_concurrency(load, 10) == TRICKLE_SLOTS
    load.leave()
    assert not load.busy
    assert await _peak_concurrency(load, 10) == 10


async def test_zero_never_narrows() -> None:
    load = RequestLoad(busy_at=0)
    for _ in range(1000):
        load.enter()
    assert not load.busy
    assert await _peak_concurrency(load, 10) == 10
