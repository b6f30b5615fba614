"""The outbox publisher: pending ``outbox_events`` rows to Kafka, at least once.

A batch is claimed with ``FOR UPDATE SKIP LOCKED`` inside one transaction that stays
open until Kafka has confirmed (or failed) every message, so two publishers never
send the same row concurrently, and ``published_at`` is set only for confirmed rows.
If the process dies mid-batch the transaction rolls back and the rows are sent again
later: consumers tolerate duplicates (the normalizer's insert is idempotent).

Requests first (runtime/load.py): while the process it shares is busy serving requests,
the publisher, once caught up, waits for the next wave of background work (1 s apart)
before it claims again, instead of polling every ``idle_poll_s`` (0.05 s); the end of the
burst lets it go at once. A backlog (a full claim) is still sent without pause. A claim's
cost is mostly fixed (a transaction, two statements, a produce request the broker
acknowledges), so fewer, bigger claims cost the broker and the producer several times less
CPU an event (measured, docs/performance.md). At rest nothing changes: a record is published
within one ``idle_poll_s``, so the end-to-end latency at a moderate rate stays as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from exchange.adapters.kafka import AsyncProducer, DeliveryFailed, OutgoingMessage
from exchange.adapters.postgres import Database
from exchange.errors import DatabaseUnavailable
from exchange.ops.metrics import Metrics
from exchange.runtime import RequestLoad, sleep_unless_stopped
from exchange.runtime.backoff import backoff_delay

__all__ = ("OutboxPublisher", "outbox_stats")

_log = logging.getLogger("exchange.outbox")

_MISSING_TOPIC = "UNKNOWN_TOPIC_OR_PART"  # librdkafka's name for it
_ROW_BACKOFF_BASE_S = 0.2

_CLAIM = """
SELECT id, topic, key, payload::text AS payload, headers, attempts
FROM outbox_events
WHERE published_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= now())
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED
"""
_MARK_PUBLISHED = """
UPDATE outbox_events
SET published_at = now(), attempts = attempts + 1, last_error = NULL
WHERE id = ANY($1::bigint[])
"""
# A failed row waits before it is claimed again (its own backoff, by its attempts), so rows
# that cannot be sent (e.g. their topic is missing) never block the rows behind them.
_MARK_FAILED = """
UPDATE outbox_events o
SET attempts = o.attempts + 1, last_error = $3, next_attempt_at = now() + make_interval(secs => f.delay_s)
FROM unnest($1::bigint[], $2::float8[]) AS f(id, delay_s)
WHERE o.id = f.id
"""
_PURGE = """
DELETE FROM outbox_events
WHERE id IN (
    SELECT id FROM outbox_events
    WHERE published_at IS NOT NULL AND published_at < now() - make_interval(hours => $1)
    LIMIT 5000
)
"""
_STATS = """
SELECT count(*) AS backlog,
       COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest_age_s
FROM outbox_events WHERE published_at IS NULL
"""


async def outbox_stats(db: Database) -> dict[str, Any]:
    """Backlog size and age of the oldest pending row (health and metrics)."""
    async with db.connection() as conn:
        row = await conn.fetchrow(_STATS)
    assert row is not None
    return {"backlog": int(row["backlog"]), "oldest_pending_age_s": round(float(row["oldest_age_s"]), 3)}


class OutboxPublisher:
    name = "outbox-publisher"

    def __init__(
        self,
        db: Database,
        producer_factory: Callable[[], AsyncProducer],
        metrics: Metrics,
        *,
        batch_size: int,
        retention_hours: int,
        idle_poll_s: float = 0.05,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 10.0,
        purge_every_s: float = 60.0,
        row_backoff_cap_s: float = 60.0,
        topics_ttl_s: float = 5.0,
        request_load: RequestLoad | None = None,
    ) -> None:
        self._db = db
        self._producer_factory = producer_factory
        self._metrics = metrics
        self._batch = batch_size
        self._retention_hours = retention_hours
        self._idle = idle_poll_s
        self._backoff_base = backoff_base_s
        self._backoff_cap = backoff_cap_s
        self._purge_every = purge_every_s
        self._row_backoff_cap = row_backoff_cap_s
        self._topics_ttl = topics_ttl_s
        self._known_topics: set[str] = set()
        self._topics_at = float("-inf")
        self._load = request_load or RequestLoad(busy_at=0)  # without one: never narrowed

    async def run(self, stop: asyncio.Event) -> None:
        # The producer is ours: a crash (e.g. a fatal idempotence error) gets a fresh one.
        producer = self._producer_factory()
        await producer.start()
        failures = 0
        loop = asyncio.get_running_loop()
        next_purge = loop.time() + self._purge_every
        try:
            while not stop.is_set():
                try:
                    sent, failed = await self.publish_batch(producer)
                except DatabaseUnavailable:
                    sent, failed = 0, 1
                    self._metrics.outbox_failures.labels("DatabaseUnavailable").inc()
                    _log.warning("outbox publish failed", extra={"error_type": "DatabaseUnavailable"})
                except DeliveryFailed as exc:  # no broker answered the metadata request
                    sent, failed = 0, 1
                    self._metrics.outbox_failures.labels(exc.error_type).inc()
                    _log.warning("outbox publish failed", extra={"error_type": exc.error_type})
                if failed and not sent:
                    # Nothing went out (Kafka down?): back off the whole publisher. Rows whose topic
                    # is missing do not count: Kafka answered, and those rows wait on their own
                    # schedule (next_attempt_at) -- counting them stalled every topic for ~10 s a
                    # batch behind a backlog of such rows.
                    failures += 1
                    delay = backoff_delay(failures, base_s=self._backoff_base, cap_s=self._backoff_cap)
                    await sleep_unless_stopped(stop, delay)
                    continue
                failures = 0
                if loop.time() >= next_purge:
                    next_purge = loop.time() + self._purge_every
                    with contextlib.suppress(DatabaseUnavailable):
                        await self.purge_published()
                if sent < self._batch:  # caught up
                    await sleep_unless_stopped(stop, self._idle)
                    await self._load.next_turn()
        finally:
            await producer.close(timeout=3.0)

    async def publish_batch(self, producer: AsyncProducer) -> tuple[int, int]:
        """Claim, send and mark one batch; returns (published, failed other than a missing topic)."""
        async with self._db.transaction() as conn:
            rows = await conn.fetch(_CLAIM, self._batch)
            if not rows:
                return 0, 0
            known = await self._topics(producer, {row["topic"] for row in rows})
            # A row for a missing topic fails at once instead of waiting out librdkafka's
            # message timeout while it holds the batch.
            sendable = [row for row in rows if row["topic"] in known]
            outcomes = await producer.send_many([
                OutgoingMessage(row["topic"], row["key"].encode(), row["payload"].encode(), row["headers"])
                for row in sendable
            ])
            published: list[int] = []
            per_topic: dict[str, int] = {}
            failed: dict[str, list[Any]] = {}
            for row, outcome in zip(sendable, outcomes, strict=True):
                if isinstance(outcome, DeliveryFailed):
                    failed.setdefault(outcome.error_type, []).append(row)
                else:
                    published.append(row["id"])
                    per_topic[row["topic"]] = per_topic.get(row["topic"], 0) + 1
            missing = [row for row in rows if row["topic"] not in known]
            if missing:
                failed.setdefault(_MISSING_TOPIC, []).extend(missing)
            for topic, count in per_topic.items():
                self._metrics.outbox_published.labels(topic).inc(count)
            if published:
                await conn.execute(_MARK_PUBLISHED, published)
            for error_type, failed_rows in failed.items():
                delays = [backoff_delay(row["attempts"] + 1, base_s=_ROW_BACKOFF_BASE_S, cap_s=self._row_backoff_cap)
                          for row in failed_rows]
                await conn.execute(_MARK_FAILED, [row["id"] for row in failed_rows], delays, error_type)
                self._metrics.outbox_failures.labels(error_type).inc(len(failed_rows))
                _log.warning("outbox publish failed", extra={"error_type": error_type, "count": len(failed_rows)})
        return len(published), sum(len(r) for error, r in failed.items() if error != _MISSING_TOPIC)

    async def _topics(self, producer: AsyncProducer, wanted: set[str]) -> set[str]:
        """Known topics, refreshed when stale or when a batch names one we have not seen."""
        loop = asyncio.get_running_loop()
        if not wanted <= self._known_topics or loop.time() - self._topics_at > self._topics_ttl:
            self._known_topics = await producer.topics()
            self._topics_at = loop.time()
        return self._known_topics

    async def purge_published(self) -> int:
        """Delete published rows older than the retention period."""
        total = 0
        while True:
            async with self._db.transaction() as conn:
                status = await conn.execute(_PURGE, self._retention_hours)
            deleted = int(status.split()[-1])
            total += deleted
            if deleted < 5000:
                return total

