""""Lost 0 at every moment, without repair": samples taken during the chaos run.

Every few seconds, for every record accepted so far (a 202 in the answers file), the watch
asks where it is. A record is accounted for while it is canonical, in ``dlq_events``, or in
the outbox not yet consumed: its event unpublished, or published at an offset the normalizer
group has not committed past. It is lost when the group committed past its event and the
database has neither its canonical row nor its ``dlq_events`` row -- the defect of issue 19,
where a dead-lettered record's row failed to be written and its offset was committed anyway --
or when it has no outbox row at all.

Order matters: the group's committed offsets are read before the tables, and the normalizer
commits only after a record's row is durable, so a record under a committed offset must show
in the tables read afterwards (no false alarm for a record finished between the two reads).
A sample that cannot be taken (PostgreSQL or Kafka down) is counted as skipped.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from exchange_bench.chaos.answers import AnswerLog

__all__ = ("LossWatch",)


@dataclass
class _Offsets:
    """Record id -> (partition, offset) of its event, read from the topic as it grows."""

    brokers: str
    topic: str
    where: dict[str, tuple[int, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def follow(self, stop: threading.Event) -> None:
        consumer = Consumer({"bootstrap.servers": self.brokers, "group.id": f"chaos-watch-{uuid.uuid4()}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "reconnect.backoff.max.ms": 1000, "log_level": 0})
        consumer.subscribe([self.topic])
        try:
            while not stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None or msg.error() is not None:
                    continue
                key = (msg.key() or b"").decode()
                with self.lock:
                    self.where.setdefault(key, (msg.partition() or 0, msg.offset() or 0))
        finally:
            consumer.close()


@dataclass
class LossWatch:
    dsn: str
    brokers: str
    topic: str
    group: str
    partitions: int
    answers: AnswerLog
    interval_s: float = 3.0
    samples: int = 0
    skipped: int = 0
    lost_ever: set[str] = field(default_factory=set)
    most_lost_at_once: int = 0
    judged_max: int = 0
    """Most records at once that were neither canonical nor dead-lettered yet published under a
    known offset: the records the offset rule judged (0 would mean it judged nothing)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        offsets = _Offsets(self.brokers, self.topic)
        self._offsets = offsets
        self._threads = [threading.Thread(target=offsets.follow, args=(self._stop,), daemon=True),
                         threading.Thread(target=self._loop, daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample_once()

    def sample_once(self) -> None:
        try:
            committed = self._committed()
            self.answers.refresh()
            accepted = list(self.answers.accepted.values())
            with self._offsets.lock:
                where = dict(self._offsets.where)
            lost = asyncio.run(self._lost(accepted, where, committed))
        except (KafkaException, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            self.skipped += 1
            return
        self.samples += 1
        self.lost_ever |= lost
        self.most_lost_at_once = max(self.most_lost_at_once, len(lost))

    def _committed(self) -> dict[int, int]:
        consumer = Consumer({"bootstrap.servers": self.brokers, "group.id": self.group, "enable.auto.commit": False,
                             "log_level": 0})
        try:
            tps = consumer.committed([TopicPartition(self.topic, p) for p in range(self.partitions)], timeout=5)
        finally:
            consumer.close()
        return {tp.partition: tp.offset for tp in tps if tp.error is None}

    async def _lost(self, accepted: list[str], where: dict[str, tuple[int, int]],
                    committed: dict[int, int]) -> set[str]:
        conn = await asyncpg.connect(self.dsn, timeout=5)
        try:
            rows: list[Any] = await conn.fetch(
                """
                SELECT a.id::text AS record_id,
                       EXISTS (SELECT 1 FROM canonical_records c WHERE c.record_id = a.id) AS canonical,
                       EXISTS (SELECT 1 FROM dlq_events d WHERE d.record_id = a.id) AS dead,
                       EXISTS (SELECT 1 FROM outbox_events o WHERE o.key = a.id::text) AS outbox
                FROM unnest($1::uuid[]) AS a(id)
                """, accepted)
        finally:
            await conn.close()
        lost: set[str] = set()
        judged = 0
        for row in rows:
            if row["canonical"] or row["dead"]:
                continue
            if not row["outbox"]:
                lost.add(row["record_id"])
                continue
            at = where.get(row["record_id"])
            if at is None or at[0] not in committed:
                continue  # not yet published, or not yet seen by the watch: in flight
            if committed[at[0]] > at[1]:
                lost.add(row["record_id"])
            else:
                judged += 1
        self.judged_max = max(self.judged_max, judged + len(lost))
        return lost

    def summary(self) -> dict[str, Any]:
        return {"samples": self.samples, "samples_skipped": self.skipped, "lost_at_some_moment": len(self.lost_ever),
                "most_lost_at_once": self.most_lost_at_once, "most_in_flight_judged": self.judged_max,
                "interval_s": self.interval_s}
