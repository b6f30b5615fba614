"""The normalizer's consumer-group membership: cooperative-sticky assignment always, static
membership (KAFKA_GROUP_INSTANCE_ID) when configured, so a restarted normalizer takes its
partitions back under the same identity instead of joining as a new member."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from exchange.roles import Role
from tests.support.app import DEV, TEST_JWT_SECRET, make_settings, running_app
from tests.support.db import eventually, fetchval
from tests.support.kafka import group_members
from tests.support.process import ServeProcess

INGEST_AND_PUBLISH = frozenset({Role.INGEST, Role.PUBLISHER})


def _body(source: str, n: int) -> dict[str, Any]:
    return {"source": source, "record_type": "claim", "payload": {"n": n},
            "patient": {"first_name": f"Mem{n}", "last_name": "Ber", "dob": "1960-06-06"}}


async def test_a_killed_normalizer_restarted_with_its_instance_id_is_the_same_member_and_goes_on(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, tmp_path: Path
) -> None:
    instance = f"normalizer-{unique}"
    env = {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET, "KAFKA_GROUP_INSTANCE_ID": instance}
    brokers, group = stack_env["KAFKA_BROKERS"], isolated_kafka["KAFKA_CONSUMER_GROUP"]
    dsn = stack_env["DATABASE_URL"]
    source = f"member-{unique}"
    settings = make_settings(stack_env, **isolated_kafka)

    async def member_holds_every_partition() -> bool:
        assignor, members = await asyncio.to_thread(group_members, brokers, group)
        return assignor == "cooperative-sticky" and members == [(instance, 6)]  # two topics of 3 partitions

    async def canonical(n: int) -> bool:
        return await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE source = $1", source) == n

    first = ServeProcess(env, "normalizer,tokenizer", tmp_path, name="member-1").start()
    second: ServeProcess | None = None
    try:
        first.wait_healthy()
        await eventually(member_holds_every_partition, timeout=60, interval=0.3)
        async with running_app(settings, INGEST_AND_PUBLISH) as client:
            for n in range(5):
                r = await client.post("/v1/ingest", json=_body(source, n),
                                      headers={**DEV, "Idempotency-Key": f"{unique}-{n}"})
                assert r.status_code == 202
            await eventually(lambda: canonical(5), timeout=60, interval=0.2)

            first.signal(signal.SIGKILL)
            first.wait(timeout=10)
            second = ServeProcess(env, "normalizer,tokenizer", tmp_path, name="member-2").start()
            second.wait_healthy()
            for n in range(5, 10):
                r = await client.post("/v1/ingest", json=_body(source, n),
                                      headers={**DEV, "Idempotency-Key": f"{unique}-{n}"})
                assert r.status_code == 202
            await eventually(lambda: canonical(10), timeout=90, interval=0.2)
        # The restarted process is the same static member, not a second one beside a dead one.
        await eventually(member_holds_every_partition, timeout=30, interval=0.3)
    finally:
        first.stop()
        if second is not None:
            second.stop()


async def test_without_an_instance_id_the_member_is_dynamic_and_cooperative(
    stack_env: dict[str, str], isolated_kafka: dict[str, str]
) -> None:
    settings = make_settings(stack_env, **isolated_kafka)
    brokers, group = stack_env["KAFKA_BROKERS"], isolated_kafka["KAFKA_CONSUMER_GROUP"]
    async with running_app(settings, frozenset({Role.NORMALIZER, Role.TOKENIZER})):
        async def joined() -> bool:
            assignor, members = await asyncio.to_thread(group_members, brokers, group)
            return assignor == "cooperative-sticky" and members == [(None, 6)]

        await eventually(joined, timeout=60, interval=0.3)
