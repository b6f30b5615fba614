"""Writing events into the outbox from other contexts (replay, repair, DLQ reprocess).

Everything that emits goes through the outbox, so a Kafka outage loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from exchange.adapters.postgres import Connection

__all__ = ("OutboxMessage", "enqueue")

_encoder = msgspec.json.Encoder()

_INSERT = """
INSERT INTO outbox_events (topic, key, payload, headers)
SELECT t, k, p::jsonb, h::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(t, k, p, h)
"""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    topic: str
    key: str
    payload: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


async def enqueue(conn: Connection, messages: Sequence[OutboxMessage]) -> int:
    """Insert pending outbox rows in the caller's transaction (one round-trip)."""
    if not messages:
        return 0
    await conn.execute(
        _INSERT,
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.payload.decode() for m in messages],
        [_encoder.encode(dict(m.headers)).decode() for m in messages],
    )
    return len(messages)
