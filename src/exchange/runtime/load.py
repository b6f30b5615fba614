"""Requests first: background consumers sharing a process narrow down while it serves.

With every role in one process (the default), the normalizer and the HTTP handlers share
one event loop and, on a small machine, the same cores as PostgreSQL and the object store.
A request has a partner waiting on it; a record in Kafka does not. So while at least
``busy_at`` requests are in flight, background work is admitted in *waves*: at most
``WAVE_SIZE`` units at once, the next wave only when the last one is done and
``WAVE_EVERY_S`` after it began. The normalizer keeps moving (up to 64 records/s) and
never stops, and it takes its full concurrency back when the burst is over: ``BUSY_HOLD_S``
after the count last fell below ``busy_at`` (a closed loop's count dips between requests,
and a dip is not the end of a burst), whatever is waiting for a wave goes at once. The
outbox publisher, caught up, waits for the next wave before its next claim
(``next_turn``; outbox/_publisher.py).

The hold is shorter than the wave period on purpose: at a moderate rate a stall of the
server (a slow commit, say) can push the count over ``busy_at`` for a moment, and the
records caught in that moment should wait ~0.25 s, not a whole wave period.

Why waves and not a steady trickle of two records at a time: one record alone pays every
fixed cost itself (its own ledger and canonical statements, commits, wake-ups), several
times what a record costs in a batch. Waves move as many records and share their
statements, so each record costs about what bulk work does. Fewer, bigger waves at the same
rate (``WAVE_SIZE`` every ``WAVE_EVERY_S``, not a quarter of it four times as often) measured
better still: more requests served for less machine CPU an ingested record, with as many
records normalized during the load (docs/performance.md).

``busy_at`` (NORMALIZER_YIELD_AT, 16) is a saturation signal: a steady moderate rate (the
benchmark's 100 requests/s) keeps well below that in flight and must not slow the pipeline
(with a threshold of 8 it did: docs/performance.md); a partner's batch on 32 connections
keeps about 32 in flight. The count must also have been that high on average over the last
``sustained_s`` (``SUSTAINED_S`` in the server): at a steady rate of half the capacity the count
crosses 16 again and again for a moment (an open loop's arrivals bunch up), and waves of 64
records a second then left the normalizer behind the partners for good (the soak,
docs/performance.md). A partner's batch keeps the average high; a bunch of arrivals does not.
A process without the HTTP roles never counts a request, so nothing narrows there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator

__all__ = ("BUSY_HOLD_S", "SUSTAINED_S", "WAVE_EVERY_S", "WAVE_SIZE", "RequestLoad")

WAVE_SIZE = 64
WAVE_EVERY_S = 1.0
BUSY_HOLD_S = 0.25
SUSTAINED_S = 0.5


class RequestLoad:
    def __init__(
        self,
        busy_at: int,
        *,
        wave_size: int = WAVE_SIZE,
        wave_every_s: float = WAVE_EVERY_S,
        busy_hold_s: float = BUSY_HOLD_S,
        sustained_s: float | None = None,
    ) -> None:
        """``busy_at``: requests in flight from which background work narrows; 0 never narrows.
        ``busy_hold_s``: how long the count must stay below it before the burst is over.
        ``sustained_s``: the count's mean over the last window of this length must have reached
        ``busy_at`` too; None: the count alone decides."""
        self._window = sustained_s
        now = time.monotonic()
        self._area = 0.0  # integral of the count over the current window, request-seconds
        self._marked = now  # when the count last changed (or was accounted)
        self._window_began = now
        self._mean = 0.0  # the count's mean over the last complete window
        self._busy_at = busy_at
        self._wave_size = wave_size
        self._wave_every = wave_every_s
        self._hold = busy_hold_s
        self._calm_check: asyncio.TimerHandle | None = None
        self.in_flight = 0
        # Background units waiting for a wave. Each future's result says whether a wave
        # admitted it (True) or the burst ended (False: it then counts in no wave).
        self._waiting: deque[asyncio.Future[bool]] = deque()
        self._wave_running = 0
        self._wave_started = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._busy_until = float("-inf")

    def enter(self) -> None:
        if self._window is not None:
            self._account(time.monotonic())
        self.in_flight += 1

    def leave(self) -> None:
        if self._window is not None:
            self._account(time.monotonic())
        if self.in_flight == self._busy_at:  # busy until now: it stays so for a moment
            self._busy_until = time.monotonic() + self._hold
            self._watch_for_calm(self._hold)
        self.in_flight -= 1

    def _account(self, now: float) -> None:
        """Add the count since it last changed to the window's integral; close the window (its
        mean is the one ``busy`` reads) once it is ``sustained_s`` long."""
        assert self._window is not None
        self._area += self.in_flight * (now - self._marked)
        self._marked = now
        elapsed = now - self._window_began
        if elapsed >= self._window:
            self._mean = self._area / elapsed
            self._area = 0.0
            self._window_began = now

    @property
    def busy(self) -> bool:
        """At least ``busy_at`` requests in flight now, or a moment ago: a closed loop's
        in-flight count dips between requests, and a dip is not the end of a burst."""
        if self._busy_at <= 0:
            return False
        now = time.monotonic()
        crowded = self.in_flight >= self._busy_at or now < self._busy_until
        if not crowded or self._window is None:
            return crowded
        self._account(now)
        return self._mean >= self._busy_at

    async def next_turn(self) -> None:
        """Wait for background work's turn, and take it at once: immediately when the process is
        not busy, else the next wave (or the end of the burst). For work that only needs its
        pace set, not its concurrency: the outbox publisher's next claim."""
        async with self.background_slot():
            pass

    @contextlib.asynccontextmanager
    async def background_slot(self) -> AsyncIterator[None]:
        """Hold this around one unit of background work (the check is made as it starts)."""
        if not self.busy:
            yield
            return
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._schedule()
        try:
            in_wave = await future  # a cancelled waiter is skipped when its wave comes
        except asyncio.CancelledError:
            # Cancelled just after its wave admitted it: give the place back, or the wave never ends.
            if future.done() and not future.cancelled() and future.result():
                self._wave_running -= 1
                self._schedule()
            raise
        try:
            yield
        finally:
            if in_wave:
                self._wave_running -= 1
                self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None or self._wave_running or not self._waiting:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._wave_started + self._wave_every - loop.time())
        self._timer = loop.call_later(delay, self._next_wave)

    def _next_wave(self) -> None:
        self._timer = None
        if not self.busy:
            # The burst is over (checked at wave time: in_flight dips between a closed loop's
            # requests, and one dip must not let the whole backlog loose).
            self._release_all()
            return
        self._wave_started = asyncio.get_running_loop().time()
        while self._waiting and self._wave_running < self._wave_size:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(True)
                self._wave_running += 1
        self._schedule()

    def _watch_for_calm(self, delay: float) -> None:
        """Check again once the hold is over: if the burst has ended, the waiting units go then
        rather than at the next wave's time. One timer at a time, however often the count dips."""
        if self._calm_check is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop, so no one can be waiting
            return
        self._calm_check = loop.call_later(delay, self._check_calm)

    def _check_calm(self) -> None:
        self._calm_check = None
        if self.in_flight >= self._busy_at:
            return  # still busy: the next time the count falls below, it is watched again
        remaining = self._busy_until - time.monotonic()
        if remaining > 0:  # the count dipped again meanwhile: wait out the newer hold
            self._watch_for_calm(remaining)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release_all()

    def _release_all(self) -> None:
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(False)
