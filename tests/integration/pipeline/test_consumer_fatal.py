"""A fatal Kafka consumer error crashes the normalizer visibly (health, metric) and the supervisor
restarts it, instead of a consumer that no longer fetches while its task says ``running``.

Both errors are caused for real on the broker: a second member with the normalizer's
``group.instance.id`` fences it (librdkafka's ``_FATAL``), and a subscribed topic that does not
exist past its grace."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import pytest
from confluent_kafka import KafkaException

from exchange.adapters.kafka import AsyncConsumer, ConsumerFatal, ensure_topics
from exchange.roles import Role
from tests.support.app import DEV, make_settings, running_app
from tests.support.db import eventually, fetchval
from tests.support.kafka import group_members

pytestmark = pytest.mark.timeout(180)

PIPELINE = frozenset({Role.INGEST, Role.PUBLISHER, Role.NORMALIZER, Role.TOKENIZER})


def _fatal_count(metrics: str, error: str) -> float:
    found = re.search(
        r'^exchange_kafka_consumer_fatal_errors_total\{error="' + re.escape(error) + r'",task="normalizer"\} (\S+)$',
        metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def _normalizer(client: Any) -> dict[str, Any]:
    task: dict[str, Any] = (await client.get("/health/detailed")).json()["tasks"]["normalizer"]
    return task


async def test_a_normalizer_fenced_by_a_member_with_its_instance_id_crashes_visibly_and_is_restarted(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    instance = f"fenced-{unique}"
    settings = make_settings(stack_env, **isolated_kafka, KAFKA_GROUP_INSTANCE_ID=instance)
    dsn = stack_env["DATABASE_URL"]
    source = f"fatal-{unique}"
    async with running_app(settings, PIPELINE) as client:
        async def member_holds_every_partition() -> bool:
            try:
                _assignor, members = await asyncio.to_thread(group_members, settings.kafka.brokers,
                                                             settings.kafka.consumer_group)
            except KafkaException:  # the group's coordinator is not known yet
                return False
            return members == [(instance, 6)]  # two topics of 3 partitions

        # The normalizer has joined: the intruder joins after it, and so fences it (not the reverse).
        await eventually(member_holds_every_partition, timeout=60, interval=0.3)
        assert (await _normalizer(client))["restarts"] == 0
        intruder = AsyncConsumer(settings.kafka.brokers, settings.kafka.consumer_group, settings.kafka.topics,
                                 on_revoke=lambda _tps: {}, group_instance_id=instance)
        await intruder.start()
        try:
            async def crashed() -> bool:
                with_fenced = asyncio.create_task(_poll_quietly(intruder))
                task = await _normalizer(client)
                await with_fenced
                return bool(task["restarts"] >= 1 and task["last_error_type"] == "ConsumerFatal")

            await eventually(crashed, timeout=60, interval=0.2)
        finally:
            await intruder.close()
        metrics = (await client.get("/metrics")).text
        assert _fatal_count(metrics, "_FATAL") >= 1
        assert re.search(r'^exchange_task_restarts_total\{error_type="ConsumerFatal",task="normalizer"\} ', metrics,
                         re.MULTILINE)

        # Restarted with a new consumer (which takes the identity back): it normalizes again.
        answer = await client.post("/v1/ingest", headers={**DEV, "Idempotency-Key": f"{unique}-1"}, json={
            "source": source, "record_type": "claim", "payload": {},
            "patient": {"first_name": "Fen", "last_name": "Ced", "dob": "1970-01-01"}})
        assert answer.status_code == 202

        async def normalized() -> bool:
            return await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE source = $1", source) == 1

        await eventually(normalized, timeout=90, interval=0.2)
        assert (await _normalizer(client))["state"] == "running"


async def _poll_quietly(consumer: AsyncConsumer) -> None:
    """The intruder polls to join (and, once the normalizer is back, is fenced in turn)."""
    with contextlib.suppress(ConsumerFatal):
        await consumer.poll_batch(10, timeout=0.1)


async def test_a_subscribed_topic_missing_past_its_grace_is_fatal_and_the_normalizer_recovers_once_it_exists(
    stack_env: dict[str, str], unique: str
) -> None:
    missing = f"missing-{unique}.record.ingested.v1"
    settings = make_settings(stack_env, KAFKA_TOPICS=missing, KAFKA_CONSUMER_GROUP=f"g{unique}",
                             KAFKA_UNKNOWN_TOPIC_GRACE_S="1")
    async with running_app(settings, frozenset({Role.NORMALIZER, Role.TOKENIZER})) as client:
        async def crashed() -> bool:
            task = await _normalizer(client)
            return bool(task["restarts"] >= 1 and task["last_error_type"] == "ConsumerFatal")

        await eventually(crashed, timeout=60, interval=0.2)
        assert _fatal_count((await client.get("/metrics")).text, "UNKNOWN_TOPIC_OR_PART") >= 1
        detailed = await client.get("/health/detailed")
        assert detailed.json()["tasks"]["normalizer"]["last_error_type"] == "ConsumerFatal"

        ensure_topics(settings.kafka.brokers, [missing], partitions=1)

        async def steady() -> bool:
            before = await _normalizer(client)
            await asyncio.sleep(3)  # longer than the grace: a still-missing topic would crash it again
            after = await _normalizer(client)
            return bool(after["state"] == "running" and after["restarts"] == before["restarts"])

        await eventually(steady, timeout=90, interval=0.1)
