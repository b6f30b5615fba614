"""Reading topics and committed offsets in assertions (tests may use confluent_kafka directly)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]


def read_all(
    brokers: str, topic: str, *, expect: int | None = None, timeout: float = 20.0
) -> list[tuple[bytes, bytes]]:
    """Every (key, value) in ``topic`` from the beginning; waits for ``expect`` messages."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"reader-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.3)
            if msg is None or msg.error() is not None:
                if expect is None and out and time.monotonic() - idle_since > 2:
                    break
                if expect is not None and len(out) >= expect and time.monotonic() - idle_since > 1:
                    break
                continue
            idle_since = time.monotonic()
            out.append((msg.key() or b"", msg.value() or b""))
        return out
    finally:
        consumer.close()


def read_headers(brokers: str, topic: str, *, timeout: float = 20.0) -> list[dict[str, str]]:
    """The headers of the first message in ``topic``."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"reader-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.3)
            if msg is not None and msg.error() is None:
                return [{k: (v or b"").decode() for k, v in (msg.headers() or [])}]
        return []
    finally:
        consumer.close()


def committed_total(brokers: str, group: str, topic: str, partitions: int) -> int:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        consumer.close()


def end_offsets_total(brokers: str, topic: str, partitions: int) -> int:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"wm-{uuid.uuid4()}"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions))
    finally:
        consumer.close()


def group_members(brokers: str, group: str) -> tuple[str, list[tuple[str | None, int]]]:
    """The group's partition assignor and, per member, its group.instance.id and partition count."""
    admin = AdminClient({"bootstrap.servers": brokers})
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    members = [(m.group_instance_id, len(m.assignment.topic_partitions)) for m in description.members]
    return str(description.partition_assignor), members
