"""Requests first: while requests are busy, the publisher claims in wider steps (bigger batches).

The publisher claims every pending row of the outbox, whatever its topic, and the session's
database is shared: rows other tests left pending (an all-roles app that stopped before its
publisher sent the record it had just accepted) are claimed here too. So the batches are
counted by what Kafka confirmed for this test's topic, not by what a claim sent, and a row of
another topic is left pending on purpose before the publisher starts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from exchange.adapters.kafka import AsyncProducer, Delivered, DeliveryFailed, OutgoingMessage, ensure_topics
from exchange.adapters.postgres import Database
from exchange.ops.metrics import Metrics
from exchange.outbox import OutboxPublisher
from exchange.runtime import RequestLoad
from exchange.settings import Settings
from tests.support.db import fetch, fetchval
from tests.support.kafka import end_offsets_total


class _CountingProducer(AsyncProducer):
    """The real producer; it also counts the messages of one topic the broker confirmed."""

    def __init__(self, brokers: str, topic: str) -> None:
        super().__init__(brokers)
        self.topic = topic
        self.confirmed = 0

    async def send_many(self, messages: Sequence[OutgoingMessage]) -> list[Delivered | DeliveryFailed]:
        outcomes = await super().send_many(messages)
        self.confirmed += sum(1 for m, o in zip(messages, outcomes, strict=True)
                              if m.topic == self.topic and isinstance(o, Delivered))
        return outcomes


class _CountingPublisher(OutboxPublisher):
    """The real publisher; it also keeps, per claim, how many of the topic's rows it published."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    async def publish_batch(self, producer: AsyncProducer) -> tuple[int, int]:
        assert isinstance(producer, _CountingProducer)
        before = producer.confirmed
        sent, failed = await super().publish_batch(producer)
        if producer.confirmed > before:
            self.batches.append(producer.confirmed - before)
        return sent, failed


async def _trickle(db: Database, topic: str, label: str, *, rows: int, every_s: float) -> float:
    """Rows arrive as ingest writes them: a few at a time, steadily. Returns how long it took
    (on a busy CI machine, longer than rows / 5 * every_s)."""
    started = time.monotonic()
    async with db.connection() as conn:
        for n in range(0, rows, 5):
            await conn.execute("INSERT INTO outbox_events (topic, key, payload) "
                               "SELECT $1, $2 || '-' || g, '{}'::jsonb FROM generate_series($3::int, $3::int + 4) g",
                               topic, label, n)
            await asyncio.sleep(every_s)
    return time.monotonic() - started


async def _published(dsn: str, topic: str, label: str, rows: int) -> None:
    for _ in range(400):
        done = await fetchval(dsn, "SELECT count(*) FROM outbox_events WHERE topic=$1 AND key LIKE $2 "
                                   "AND published_at IS NOT NULL", topic, f"{label}-%")
        if done == rows:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{label}: {done} of {rows} rows published")


async def test_busy_requests_widen_the_claims_and_every_row_is_published_once(
    stack_env: dict[str, str], app_settings: Settings, db: Database, unique: str
) -> None:
    dsn = stack_env["DATABASE_URL"]
    topic, other = f"pacing-{unique}", f"pacing-{unique}-other"
    brokers = app_settings.kafka.brokers
    ensure_topics(brokers, [topic, other], partitions=1)
    # Another test's leftover: pending, and published by this publisher's first claim.
    await fetch(dsn, "INSERT INTO outbox_events (topic, key, payload) VALUES ($1, 'leftover', '{}'::jsonb)", other)
    load = RequestLoad(busy_at=1, wave_every_s=0.5, busy_hold_s=0.1)
    publisher = _CountingPublisher(db, lambda: _CountingProducer(brokers, topic), Metrics(), batch_size=500,
                                   retention_hours=24, idle_poll_s=0.05, request_load=load)
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    try:
        load.enter()  # a request in flight: busy
        busy_s = await _trickle(db, topic, "busy", rows=200, every_s=0.05)
        await _published(dsn, topic, "busy", 200)
        busy = list(publisher.batches)
        load.leave()
        await asyncio.sleep(0.2)  # the burst is over (RequestLoad keeps "busy" a moment after)
        publisher.batches.clear()
        await _trickle(db, topic, "idle", rows=200, every_s=0.05)
        await _published(dsn, topic, "idle", 200)
        idle = list(publisher.batches)
    finally:
        stop.set()
        await task
    # ~2 s of rows (more on a loaded machine): busy, a claim a wave (0.5 s); at rest, about one
    # per insert (every ~0.05 s).
    assert sum(busy) == 200 and sum(idle) == 200
    assert len(busy) <= busy_s / 0.5 + 2, (busy_s, busy)
    assert len(idle) >= 2 * len(busy), (busy, idle)  # the same rows in half the claims or fewer
    # Each row was sent once: one attempt recorded each, and the topic holds 400 messages.
    assert await fetchval(dsn, "SELECT count(*) FROM outbox_events WHERE topic=$1 AND attempts = 1", topic) == 400
    assert end_offsets_total(brokers, topic, 1) == 400
    assert end_offsets_total(brokers, other, 1) == 1
    await fetch(dsn, "DELETE FROM outbox_events WHERE topic = ANY($1::text[])", [topic, other])
