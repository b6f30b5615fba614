"""Background cleanup of expired idempotency responses (the retention policy)."""

from __future__ import annotations

import asyncio
import logging

from exchange.adapters.postgres import Database
from exchange.errors import DatabaseUnavailable
from exchange.ingest._service import purge_expired_keys
from exchange.runtime import sleep_unless_stopped

__all__ = ("IdempotencyJanitor",)

_log = logging.getLogger("exchange.ingest.janitor")


class IdempotencyJanitor:
    name = "idempotency-janitor"

    def __init__(self, db: Database, *, interval_s: float = 300.0) -> None:
        self._db = db
        self._interval = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                deleted = await purge_expired_keys(self._db)
                if deleted:
                    _log.info("expired idempotency keys purged", extra={"count": deleted})
            except DatabaseUnavailable:
                pass  # the next round retries; ingest itself reports the outage
            await sleep_unless_stopped(stop, self._interval)
