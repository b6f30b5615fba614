"""The chaos run's loss watch can fail: on the real broker and database, a record whose event
the group committed past with neither a canonical nor a ``dlq_events`` row is lost, as is an
accepted record with no outbox row; one under the committed offset is in flight, not lost."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from exchange_bench.chaos.answers import AnswerLog
from exchange_bench.chaos.watch import LossWatch
from tests.support.db import fetch

pytestmark = pytest.mark.timeout(120)


def _produce(brokers: str, topic: str, keys: list[str]) -> None:
    producer = Producer({"bootstrap.servers": brokers})
    for key in keys:
        producer.produce(topic, key=key.encode(), value=b"{}", partition=0)
    assert producer.flush(20) == 0


def _commit(brokers: str, group: str, topic: str, offset: int) -> None:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        consumer.close()


async def test_a_record_committed_past_without_a_row_is_lost_and_one_in_flight_is_not(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], tmp_path: Path
) -> None:
    dsn, brokers = stack_env["DATABASE_URL"], stack_env["KAFKA_BROKERS"]
    topic, group = isolated_kafka["TOPIC_RECORD_INGESTED_V2"], isolated_kafka["KAFKA_CONSUMER_GROUP"]
    done, waiting, unlogged = (str(uuid.uuid4()) for _ in range(3))
    _produce(brokers, topic, [done, waiting])  # offsets 0 and 1 of partition 0
    for record_id in (done, waiting):
        await fetch(dsn, "INSERT INTO outbox_events (topic, key, payload, published_at) VALUES ($1, $2, '{}', now())",
                    topic, record_id)
    _commit(brokers, group, topic, 1)  # the group is past `done`, not past `waiting`
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"key": f"k{n}", "n": n, "attempt": 1, "status": 202, "ct": "", "t": 1.0,
                                           "record_id": rid}) + "\n"
                               for n, rid in enumerate((done, waiting, unlogged))))
    watch = LossWatch(dsn, brokers, topic, group, 3, AnswerLog(answers), interval_s=3600)
    watch.start()
    try:
        deadline = time.monotonic() + 30
        while len(watch._offsets.where) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        await _sample(watch)
        assert watch.lost_ever == {done, unlogged}
        assert watch.summary()["most_in_flight_judged"] == 3  # `waiting` judged in flight, two lost

        await fetch(dsn, "INSERT INTO canonical_records (record_id, source, raw_object_key, raw_sha256, normalized, "
                         "ingested_at, correlation_id, event_version) "
                         "VALUES ($1, $2, 'k', 'x', '{}', now(), 'c', '2')", uuid.UUID(done), f"chaos-watch-{done}")
        watch.lost_ever = set()
        await _sample(watch)
        assert watch.lost_ever == {unlogged}
    finally:
        watch.stop()
        # The rows stand for nothing real: other tests (derive's) read every canonical row.
        await fetch(dsn, "DELETE FROM canonical_records WHERE record_id = $1", uuid.UUID(done))
        await fetch(dsn, "DELETE FROM outbox_events WHERE topic = $1", topic)


async def _sample(watch: LossWatch) -> None:
    """``sample_once`` runs its own event loop: off this test's loop, in a thread."""
    taken = watch.samples
    await asyncio.to_thread(watch.sample_once)
    assert watch.samples == taken + 1
