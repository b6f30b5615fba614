"""What other contexts may ask about the outbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from exchange.adapters.postgres import Connection

__all__ = ("OutboxStatus", "outbox_status_for_keys")

_BY_KEYS = """
SELECT key, max(created_at) AS last_created, bool_or(published_at IS NULL) AS pending,
       min(created_at) FILTER (WHERE published_at IS NULL) AS oldest_pending,
       max(published_at) AS last_published
FROM outbox_events WHERE key = ANY($1::text[]) GROUP BY key
"""


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    key: str
    last_created: dt.datetime
    pending: bool
    oldest_pending: dt.datetime | None
    last_published: dt.datetime | None


async def outbox_status_for_keys(conn: Connection, keys: Sequence[str]) -> dict[str, OutboxStatus]:
    rows = await conn.fetch(_BY_KEYS, list(keys))
    return {
        r["key"]: OutboxStatus(r["key"], r["last_created"], bool(r["pending"]), r["oldest_pending"],
                               r["last_published"])
        for r in rows
    }
