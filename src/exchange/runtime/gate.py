"""A gate that holds background work while a dependency it needs is down.

When a dependency (the database, the object store, a remote tokenizer) is down, every unit
of work fails the same way, and spending each unit's retries on it would dead-letter healthy
work. So a unit that failed for want of a dependency asks :meth:`DependencyGate.outage`,
which probes that dependency (one probe shared by every unit asking at once): if the probe
fails too, the outage is confirmed, the gate closes and a watcher probes with backoff until
the dependency answers again; the units wait at :meth:`DependencyGate.wait_open` and retry
then, without counting the failure against their own attempts. If the probe succeeds, the
dependency is up and the failure was the unit's own (it is charged to it as usual), so a
unit that fails the same way for its own reasons cannot hold every other unit back.

Single event loop: the methods are called from one loop and need no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from exchange.runtime.backoff import backoff_delay

__all__ = ("DependencyGate", "Probe")

Probe = Callable[[], Awaitable[None]]
"""Returns when the dependency answers the way the work needs it to; raises otherwise."""

_log = logging.getLogger("exchange.runtime")


class DependencyGate:
    def __init__(
        self,
        probes: Mapping[str, Probe],
        *,
        probe_timeout_s: float = 5.0,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 5.0,
    ) -> None:
        self._probes = dict(probes)
        self._timeout = probe_timeout_s
        self._base = backoff_base_s
        self._cap = backoff_cap_s
        self._down: dict[str, float] = {}  # dependency -> when the outage was confirmed (monotonic)
        self._reopened: dict[str, float] = {}  # dependency -> when it last answered again
        self._open = asyncio.Event()
        self._open.set()
        self._checks: dict[str, asyncio.Task[bool]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._listeners: list[Callable[[tuple[str, ...]], None]] = []
        self._outage_listeners: list[Callable[[str], None]] = []

    @property
    def dependencies(self) -> tuple[str, ...]:
        """The dependencies this gate watches, sorted."""
        return tuple(sorted(self._probes))

    @property
    def waiting_for(self) -> tuple[str, ...]:
        """The dependencies confirmed down now, sorted (empty while the gate is open)."""
        return tuple(sorted(self._down))

    def is_open(self) -> bool:
        return not self._down

    def subscribe(self, on_change: Callable[[tuple[str, ...]], None],
                  on_outage: Callable[[str], None] | None = None) -> None:
        """``on_change(waiting_for)`` after every close and reopen; ``on_outage(dependency)`` per outage."""
        self._listeners.append(on_change)
        if on_outage is not None:
            self._outage_listeners.append(on_outage)

    async def wait_open(self, stop: asyncio.Event) -> bool:
        """Wait until no dependency is down; False when ``stop`` was set first (drain: give up)."""
        while not stop.is_set():
            if not self._down:
                return True
            opened = asyncio.ensure_future(self._open.wait())
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait((opened, stopped), return_when=asyncio.FIRST_COMPLETED)
            finally:
                opened.cancel()
                stopped.cancel()
        return False

    async def outage(self, dependency: str, *, since: float | None = None) -> bool:
        """Work failed because ``dependency`` was unavailable: True when that is an outage (the
        gate is closed now, or was for this dependency after ``since``, the work's start on the
        ``time.monotonic`` clock): do not charge the failure, wait and retry. False when the
        dependency answers a probe: the failure is the work's own."""
        if dependency in self._down:
            return True
        if since is not None and self._reopened.get(dependency, float("-inf")) >= since:
            return True  # it was down while this work ran: the failure is the outage's
        if dependency not in self._probes:
            return False
        check = self._checks.get(dependency)
        if check is None:
            check = asyncio.create_task(self._answers(dependency), name=f"probe:{dependency}")
            self._checks[dependency] = check
            check.add_done_callback(lambda _t: self._checks.pop(dependency, None))
        if await asyncio.shield(check):
            return False
        self._close(dependency)
        return True

    async def _answers(self, dependency: str) -> bool:
        # asyncio.timeout, not wait_for: on 3.11, wait_for returns the probe's outcome when a cancel
        # arrives just as the probe ends, swallowing the cancel, so close() waited for a watcher that
        # went on probing forever (a stopping normalizer hung; tests/unit/runtime/test_gate.py).
        try:
            async with asyncio.timeout(self._timeout):
                await self._probes[dependency]()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - any failure of the probe means "down"
            return False
        return True

    def _close(self, dependency: str) -> None:
        if dependency in self._down:
            return
        self._down[dependency] = time.monotonic()
        self._open.clear()
        _log.warning("waiting for dependency", extra={"dependency": dependency})
        self._watchers[dependency] = asyncio.create_task(self._watch(dependency), name=f"watch:{dependency}")
        for notify in self._outage_listeners:
            notify(dependency)
        self._changed()

    async def _watch(self, dependency: str) -> None:
        """Probe ``dependency`` with backoff until it answers, then reopen for it."""
        attempt = 0
        while True:
            attempt += 1
            await asyncio.sleep(backoff_delay(attempt, base_s=self._base, cap_s=self._cap))
            if await self._answers(dependency):
                break
        since = self._down.pop(dependency)
        self._watchers.pop(dependency, None)
        self._reopened[dependency] = time.monotonic()
        _log.info("dependency is back", extra={"dependency": dependency,
                                               "waited_s": round(time.monotonic() - since, 3)})
        if not self._down:
            self._open.set()
        self._changed()

    def _changed(self) -> None:
        waiting = self.waiting_for
        for notify in self._listeners:
            notify(waiting)

    async def close(self) -> None:
        """Stop probing and forget every outage (the work that waited has stopped too); a new
        run starts with the gate open and finds out again."""
        tasks = [*self._watchers.values(), *self._checks.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watchers.clear()
        self._checks.clear()
        had_outage = bool(self._down)
        self._down.clear()
        self._open.set()
        if had_outage:
            self._changed()
