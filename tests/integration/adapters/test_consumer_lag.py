"""AsyncConsumer.lag against the real broker: the records a member owns and has not committed,
polled or not, per partition, from the broker's high watermarks (not the last fetch's)."""

from __future__ import annotations

import pytest

from exchange.adapters.kafka import AsyncConsumer, AsyncProducer, ConsumedMessage, OutgoingMessage
from exchange.normalize import OffsetBook

pytestmark = pytest.mark.timeout(120)


async def test_lag_counts_uncommitted_records_per_partition_until_they_are_committed(
    isolated_kafka: dict[str, str], stack_env: dict[str, str]
) -> None:
    brokers = stack_env["KAFKA_BROKERS"]
    topic = isolated_kafka["TOPIC_RECORD_INGESTED_V1"]
    book = OffsetBook()
    consumer = AsyncConsumer(brokers, isolated_kafka["KAFKA_CONSUMER_GROUP"], [topic],
                             on_revoke=book.revoke, on_assign=book.assign)
    producer = AsyncProducer(brokers)
    await producer.start()
    await consumer.start()
    try:
        polled: list[ConsumedMessage] = []
        for _ in range(100):  # join the group: the first polls get the assignment
            polled += await consumer.poll_batch(100, timeout=0.2)
            if await consumer.lag():
                break
        assert await consumer.lag() == {(topic, p): 0 for p in range(3)}

        sent = await producer.send_many([OutgoingMessage(topic, f"k{n}".encode(), b"{}") for n in range(9)])
        per_partition = {p: sum(1 for d in sent if not isinstance(d, Exception) and d.partition == p)
                         for p in range(3)}
        assert sum(per_partition.values()) == 9
        # Not polled yet: the broker's watermarks already count them.
        assert await consumer.lag() == {(topic, p): n for p, n in per_partition.items()}

        while len(polled) < 9:
            polled += await consumer.poll_batch(100, timeout=0.5)
        # Polled but not finished (not committed): still lag.
        assert await consumer.lag() == {(topic, p): n for p, n in per_partition.items()}

        first = min(polled, key=lambda m: m.offset)
        await consumer.commit({(first.topic, first.partition): first.offset + 1})
        expected = {(topic, p): n for p, n in per_partition.items()}
        expected[(first.topic, first.partition)] -= 1
        assert await consumer.lag() == expected

        await consumer.commit({(m.topic, m.partition): m.offset + 1 for m in polled})
        assert await consumer.lag() == {(topic, p): 0 for p in range(3)}
    finally:
        await consumer.close()
        await producer.close()
