"""Supervised background tasks: restart on crash with capped backoff, drain on stop.

A component's ``run(stop)`` works until ``stop`` is set and then returns on its own
(finishing or abandoning in-flight work without committing past it). If it raises, the
supervisor records the error type and restarts it after an exponential, capped delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from exchange.runtime.backoff import backoff_delay

__all__ = ("BackgroundComponent", "Supervisor", "TaskStatus", "sleep_unless_stopped")

_log = logging.getLogger("exchange.runtime")

TaskState = Literal["starting", "running", "waiting", "restarting", "stopped"]
"""``waiting``: running, but holding its work until the dependencies in ``waiting_for`` are back."""


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Sleep up to ``seconds``, returning early when ``stop`` is set (the drain signal)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class BackgroundComponent(Protocol):
    name: str

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; return promptly after it is."""


@dataclass(slots=True)
class TaskStatus:
    name: str
    state: TaskState = "starting"
    restarts: int = 0
    last_error_type: str | None = None
    last_error_at: float | None = None
    waiting_for: tuple[str, ...] = ()


class Supervisor:
    def __init__(
        self,
        components: Sequence[BackgroundComponent],
        *,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        healthy_after: float = 60.0,
        on_change: Callable[[TaskStatus], None] | None = None,
    ) -> None:
        self._components = list(components)
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._healthy_after = healthy_after
        self._on_change = on_change
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.statuses: dict[str, TaskStatus] = {c.name: TaskStatus(c.name) for c in components}

    def _set(self, status: TaskStatus, state: TaskState) -> None:
        status.state = state
        if self._on_change is not None:
            self._on_change(status)

    def start(self) -> None:
        for component in self._components:
            self._tasks.append(asyncio.create_task(self._supervise(component), name=f"supervised:{component.name}"))

    async def _supervise(self, component: BackgroundComponent) -> None:
        status = self.statuses[component.name]
        failures = 0
        while not self._stop.is_set():
            status.waiting_for = ()
            self._set(status, "running")
            started = time.monotonic()
            try:
                await component.run(self._stop)
                if self._stop.is_set():
                    break
                raise RuntimeError("component returned before stop")  # noqa: TRY301 - treated like a crash
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any crash is restarted; only its type is kept
                if time.monotonic() - started > self._healthy_after:
                    failures = 0  # it ran fine for a while: start the backoff over
                failures += 1
                status.restarts += 1
                status.last_error_type = type(exc).__name__
                status.last_error_at = time.time()
                self._set(status, "restarting")
                delay = backoff_delay(failures, base_s=self._backoff_base, cap_s=self._backoff_cap)
                _log.warning(
                    "background task crashed; restarting",
                    extra={"task": component.name, "error_type": status.last_error_type,
                           "attempt": failures, "delay_s": round(delay, 2)},
                )
                await sleep_unless_stopped(self._stop, delay)
        self._set(status, "stopped")

    def set_waiting(self, name: str, dependencies: tuple[str, ...]) -> None:
        """A running component holds its work until ``dependencies`` are back (none: it works again)."""
        status = self.statuses[name]
        if status.state not in ("running", "waiting"):
            return  # it crashed or stopped meanwhile: that state says more
        status.waiting_for = dependencies
        self._set(status, "waiting" if dependencies else "running")

    async def stop(self, timeout: float) -> None:
        """Ask every component to stop; cancel those still running after ``timeout`` seconds."""
        self._stop.set()
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for task in pending:
            _log.warning("background task did not drain in time; cancelling", extra={"task": task.get_name()})
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)
        for status in self.statuses.values():
            if status.state != "stopped":
                self._set(status, "stopped")

    def healthy(self) -> bool:
        return all(s.state == "running" for s in self.statuses.values())
