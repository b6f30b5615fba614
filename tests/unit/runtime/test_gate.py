"""DependencyGate: an outage confirmed by a probe closes it until a probe answers again; a
dependency that answers makes the failure the work's own."""

from __future__ import annotations

import asyncio
import time

import pytest

from exchange.runtime import DependencyGate


class FakeDependency:
    """A probe whose answer the test sets; it counts the probes."""

    def __init__(self, *, up: bool) -> None:
        self.up = up
        self.probes = 0
        self.probed_thrice = asyncio.Event()

    async def probe(self) -> None:
        self.probes += 1
        if self.probes >= 3:
            self.probed_thrice.set()
        await asyncio.sleep(0)
        if not self.up:
            raise ConnectionRefusedError("down")


def gate_for(**deps: FakeDependency) -> DependencyGate:
    return DependencyGate({name: d.probe for name, d in deps.items()}, backoff_base_s=0.001, backoff_cap_s=0.01)


async def test_a_dependency_that_answers_makes_the_failure_the_works_own() -> None:
    db = FakeDependency(up=True)
    gate = gate_for(database=db)
    assert await gate.outage("database") is False
    assert gate.is_open()
    assert gate.waiting_for == ()
    await gate.close()


async def test_a_confirmed_outage_holds_every_waiter_until_a_probe_answers() -> None:
    db = FakeDependency(up=False)
    gate = gate_for(database=db)
    seen: list[tuple[str, ...]] = []
    outages: list[str] = []
    gate.subscribe(seen.append, outages.append)
    stop = asyncio.Event()

    assert await gate.outage("database") is True
    assert gate.waiting_for == ("database",)
    waiters = [asyncio.create_task(gate.wait_open(stop)) for _ in range(3)]
    await db.probed_thrice.wait()  # the watcher keeps probing while it is down
    assert not any(w.done() for w in waiters)

    db.up = True
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert gate.is_open()
    assert seen == [("database",), ()]
    assert outages == ["database"]
    await gate.close()


async def test_concurrent_failures_share_one_probe_and_close_the_gate_once() -> None:
    store = FakeDependency(up=False)
    gate = gate_for(object_store=store)
    outages: list[str] = []
    gate.subscribe(lambda _w: None, outages.append)
    answers = await asyncio.gather(*(gate.outage("object_store") for _ in range(20)))
    assert answers == [True] * 20
    assert outages == ["object_store"]
    await gate.close()


async def test_a_failure_from_before_the_dependency_came_back_is_not_charged() -> None:
    # The attempt started while the store was down and failed after a probe had found it back
    # (a slow timeout): it is the outage's failure, not the record's.
    store = FakeDependency(up=False)
    gate = gate_for(object_store=store)
    attempt_started = time.monotonic()
    assert await gate.outage("object_store") is True
    store.up = True
    assert await gate.wait_open(asyncio.Event())
    assert await gate.outage("object_store", since=attempt_started) is True
    probes = store.probes
    # An attempt that started after the store was back is charged as usual (after a probe).
    assert await gate.outage("object_store", since=time.monotonic()) is False
    assert store.probes == probes + 1
    await gate.close()


async def test_waiting_ends_without_opening_when_stop_is_set() -> None:
    db = FakeDependency(up=False)
    gate = gate_for(database=db)
    stop = asyncio.Event()
    assert await gate.outage("database")
    waiter = asyncio.create_task(gate.wait_open(stop))
    await asyncio.sleep(0)
    stop.set()
    assert await waiter is False
    await gate.close()
    assert gate.is_open()  # a new run starts open and finds out again


async def test_an_unknown_dependency_is_never_an_outage() -> None:
    gate = DependencyGate({})
    assert await gate.outage("tokenizer") is False
    assert gate.is_open()


@pytest.mark.parametrize("failure", [TimeoutError, RuntimeError])
async def test_a_probe_that_raises_anything_means_down(failure: type[Exception]) -> None:
    async def probe() -> None:
        raise failure

    gate = DependencyGate({"tokenizer": probe}, backoff_base_s=0.001)
    assert await gate.outage("tokenizer") is True
    await gate.close()


async def test_close_ends_the_watcher_even_when_its_probe_ends_as_the_cancel_arrives() -> None:
    # Closing after 0..39 loop steps lands the cancel at every point of the watcher's cycle, once
    # just as a probe has failed and the watcher has not resumed yet (where wait_for lost it).
    async def probe() -> None:
        await asyncio.sleep(0)
        raise ConnectionRefusedError("down")

    for steps in range(40):
        gate = DependencyGate({"database": probe}, backoff_base_s=0.0001, backoff_cap_s=0.0001)
        assert await gate.outage("database")
        for _ in range(steps):
            await asyncio.sleep(0)
        closing = asyncio.ensure_future(gate.close())
        _done, pending = await asyncio.wait({closing}, timeout=2)
        assert not pending, f"close() hung after {steps} steps: the watcher swallowed its cancel"
        assert gate.is_open()
