"""What other contexts may ask about the outbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from exchange.adapters.postgres import Connection

__all__ = ("Delivery", "OutboxStatus", "outbox_status_for_keys", "record_deliveries")

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


# A record's outbox rows (its first event, and one per replay that re-emitted it), oldest first.
# Published rows are purged after OUTBOX_RETENTION_HOURS: then there is none.
_DELIVERIES = """
SELECT topic, created_at, published_at, attempts FROM outbox_events WHERE key = $1 ORDER BY id LIMIT $2
"""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox row of a record: pending until Kafka confirmed it."""

    topic: str
    created_at: dt.datetime
    published_at: dt.datetime | None
    attempts: int


async def record_deliveries(conn: Connection, record_id: str, *, limit: int = 20) -> list[Delivery]:
    rows = await conn.fetch(_DELIVERIES, record_id, limit)
    return [Delivery(r["topic"], r["created_at"], r["published_at"], r["attempts"]) for r in rows]
