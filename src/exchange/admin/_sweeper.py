"""The admin role's job sweeper: on start, then every lease, it takes over jobs whose owner
stopped renewing the lease (killed, or its machine gone), so no job stays ``running`` for ever."""

from __future__ import annotations

import asyncio
import logging

from exchange.admin._service import AdminService
from exchange.errors import DependencyUnavailable
from exchange.runtime import sleep_unless_stopped

__all__ = ("JobSweeper",)

_log = logging.getLogger("exchange.admin")


class JobSweeper:
    name = "job-sweeper"

    def __init__(self, admin: AdminService, *, interval_s: float) -> None:
        self._admin = admin
        self._interval = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._admin.take_over_stale()
            except DependencyUnavailable:
                _log.info("job sweep skipped: database unavailable")
            await sleep_unless_stopped(stop, self._interval)
