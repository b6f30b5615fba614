"""Requests first: background consumers sharing a process narrow down while it serves.

With every role in one process (the default), the normalizer and the HTTP handlers share
one event loop and, on a small machine, the same cores as PostgreSQL and the object store.
A request has a partner waiting on it; a record in Kafka does not. So while at least
``busy_at`` requests are in flight, the normalizer processes at most ``TRICKLE_SLOTS``
records at a time -- it keeps moving, it never stops -- and takes its full concurrency back
as soon as the burst is over. Measured with all roles in one process at 32 connections:
ingest 339 -> 581-635 req/s; the backlog built during the burst is drained after it (the
benchmark reports it as ``ingest_backlog_at_end`` and ``ingest_catchup_s``).
A process without the HTTP roles never counts a request, so nothing narrows there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ("TRICKLE_SLOTS", "RequestLoad")

TRICKLE_SLOTS = 2


class RequestLoad:
    def __init__(self, busy_at: int) -> None:
        """``busy_at``: requests in flight from which background work narrows; 0 never narrows."""
        self._busy_at = busy_at
        self.in_flight = 0
        self._trickle = asyncio.Semaphore(TRICKLE_SLOTS)

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1

    @property
    def busy(self) -> bool:
        return self._busy_at > 0 and self.in_flight >= self._busy_at

    @contextlib.asynccontextmanager
    async def background_slot(self) -> AsyncIterator[None]:
        """Hold this around one unit of background work (the check is made as it starts)."""
        if not self.busy:
            yield
            return
        async with self._trickle:
            yield
