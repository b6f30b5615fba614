from __future__ import annotations

import asyncio

from exchange.runtime import Supervisor


class Crashy:
    name = "crashy"

    def __init__(self, crashes: int) -> None:
        self.crashes = crashes
        self.runs = 0

    async def run(self, stop: asyncio.Event) -> None:
        self.runs += 1
        if self.runs <= self.crashes:
            raise ConnectionError("boom")
        await stop.wait()


class Stubborn:
    """Ignores stop: the supervisor must cancel it after the drain timeout."""

    name = "stubborn"
    cancelled = False

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            Stubborn.cancelled = True
            raise


async def test_a_crashed_task_is_restarted_and_its_error_is_visible() -> None:
    comp = Crashy(crashes=2)
    sup = Supervisor([comp], backoff_base=0.01, backoff_cap=0.05)
    sup.start()
    for _ in range(200):
        if sup.statuses["crashy"].state == "running" and comp.runs == 3:
            break
        await asyncio.sleep(0.01)
    status = sup.statuses["crashy"]
    assert comp.runs == 3
    assert status.restarts == 2
    assert status.last_error_type == "ConnectionError"
    assert sup.healthy()
    await sup.stop(timeout=1)
    assert status.state == "stopped"


async def test_backoff_is_capped() -> None:
    comp = Crashy(crashes=1000)
    sup = Supervisor([comp], backoff_base=0.001, backoff_cap=0.02)
    sup.start()
    await asyncio.sleep(0.5)
    await sup.stop(timeout=1)
    # No delay passes the 20 ms cap: half a second allows at least ~20 restarts.
    assert comp.runs >= 15


async def test_stop_cancels_a_task_that_does_not_drain() -> None:
    sup = Supervisor([Stubborn()])
    sup.start()
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sup.stop(timeout=0.2)
    assert loop.time() - started < 2
    assert Stubborn.cancelled
    assert sup.statuses["stubborn"].state == "stopped"


async def test_state_changes_are_reported() -> None:
    seen: list[str] = []
    sup = Supervisor([Crashy(crashes=1)], backoff_base=0.01, on_change=lambda s: seen.append(s.state))
    sup.start()
    await asyncio.sleep(0.1)
    await sup.stop(timeout=1)
    assert seen[:3] == ["running", "restarting", "running"]
    assert seen[-1] == "stopped"
