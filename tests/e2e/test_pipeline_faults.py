"""Failure paths of the pipeline, caused for real: servers stopped, processes killed,
raw objects removed or altered, events delivered twice."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from exchange.adapters.objectstore import AiobotocoreObjectStore
from exchange.roles import Role
from exchange_stack import Stack
from tests.support.app import DEV, TEST_JWT_SECRET, make_settings, running_app
from tests.support.db import eventually, fetch, fetchval
from tests.support.kafka import committed_total, end_offsets_total, read_all
from tests.support.process import ServeProcess

INGEST_ONLY = frozenset({Role.INGEST})
INGEST_AND_PUBLISH = frozenset({Role.INGEST, Role.PUBLISHER})
NORMALIZE = frozenset({Role.NORMALIZER, Role.TOKENIZER})


def v1_body(source: str, n: int = 0, **patient: str) -> dict[str, Any]:
    p = {"first_name": f"Pat{n}", "last_name": "Lee", "dob": "1980-02-03", **patient}
    return {"source": source, "record_type": "encounter", "patient": p, "payload": {"n": n}}


def v2_body(source: str, c: dict[str, str]) -> dict[str, Any]:
    return {"source": source, "record_kind": "encounter", "schema_hint": "partnerB.v1",
            "patient": {"given_name": c["given_name"], "family_name": c["family_name"], "dob": c["dob"],
                        "ssn": c["ssn"]},
            "payload": {"phone": c["phone"], "email": c["email"], "visit": 1}}


async def canonical_count(dsn: str, source: str) -> int:
    return int(await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE source = $1", source))


@pytest.mark.timeout(300)
async def test_kafka_down_ingest_still_accepts_and_the_outbox_drains_when_it_returns(
    stack: Stack, stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    """The runbook's 'Verify Outbox Pattern (Kafka Down Test)', with the real broker stopped."""
    settings = make_settings(stack_env, **isolated_kafka)
    dsn = stack_env["DATABASE_URL"]
    source = f"kdown-{unique}"
    async with running_app(settings) as client:
        await asyncio.to_thread(stack.stop, "kafka")
        try:
            r = await client.post("/v1/ingest", json=v1_body(source), headers={**DEV, "Idempotency-Key": f"{unique}-k"})
            assert r.status_code == 202, r.text
            record_id = r.json()["record_id"]
            await asyncio.sleep(2.0)
            rows = await fetch(dsn, "SELECT id, topic, key, created_at, published_at FROM outbox_events "
                                    "WHERE key = $1 ORDER BY id DESC LIMIT 5", record_id)
            assert len(rows) == 1
            assert rows[0]["published_at"] is None
        finally:
            await asyncio.to_thread(stack.start, "kafka")

        async def published() -> bool:
            value = await fetchval(dsn, "SELECT published_at FROM outbox_events WHERE key = $1", record_id)
            return value is not None

        await eventually(published, timeout=90, interval=0.5)

        async def canonical() -> bool:
            return await canonical_count(dsn, source) == 1

        await eventually(canonical, timeout=90, interval=0.5)


@pytest.mark.timeout(300)
async def test_tokenizer_down_retries_in_the_ledger_then_a_pii_free_v2_dlq_message(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, canaries: dict[str, str],
    tmp_path: Path,
) -> None:
    """Split roles: the normalizer process calls TOKENIZER_URL, where nothing listens."""
    env = {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET, "MAX_ATTEMPTS": "3",
           "BACKOFF_BASE_MS": "100", "TOKENIZER_URL": "http://127.0.0.1:9"}
    dsn = stack_env["DATABASE_URL"]
    source = f"tokdown-{unique}"
    normalizer = ServeProcess(env, "normalizer", tmp_path, name="normalizer").start()
    try:
        normalizer.wait_healthy()
        settings = make_settings(stack_env, **isolated_kafka)
        async with running_app(settings, INGEST_AND_PUBLISH) as client:
            r = await client.post("/v2/ingest", json=v2_body(source, canaries),
                                  headers={**DEV, "Idempotency-Key": f"{unique}-t"})
            assert r.status_code == 202, r.text
            record_id = r.json()["record_id"]

            async def dead_lettered() -> bool:
                status = await fetchval(dsn, "SELECT status FROM processing_stage_state WHERE record_id = $1",
                                        uuid.UUID(record_id))
                return bool(status == "dlq")

            await eventually(dead_lettered, timeout=60, interval=0.3)

        attempts = await fetch(dsn, "SELECT attempt_no, status, error_type, error_stage, transient FROM "
                                    "processing_attempts WHERE record_id = $1 ORDER BY attempt_no",
                               uuid.UUID(record_id))
        assert [a["attempt_no"] for a in attempts] == [1, 2, 3]
        assert all(a["error_stage"] == "tokenize" and a["transient"] for a in attempts)
        assert attempts[-1]["status"] == "dlq_published"

        dlq = read_all(stack_env["KAFKA_BROKERS"], isolated_kafka["KAFKA_DLQ_TOPIC_V2"], expect=1)
        assert len(dlq) == 1
        envelope = json.loads(dlq[0][1])
        assert set(envelope) == {"original_event", "error", "attempts", "failed_at"}
        assert envelope["error"]["stage"] == "tokenize"
        assert envelope["error"]["type"] == "TokenizerUnavailable"
        assert envelope["attempts"] == 3
        assert envelope["original_event"]["record_id"] == record_id
        assert envelope["original_event"]["event_version"] == "2"
        # Nothing on the v1 DLQ; no canonical row.
        assert read_all(stack_env["KAFKA_BROKERS"], isolated_kafka["KAFKA_DLQ_TOPIC_V1"], timeout=3) == []
        assert await canonical_count(dsn, source) == 0

        # PII-free: envelope, DLQ table, ledger and the normalizer's logs hold no canary.
        ledger = await fetch(dsn, "SELECT * FROM processing_attempts WHERE record_id = $1", uuid.UUID(record_id))
        dlq_rows = await fetch(dsn, "SELECT * FROM dlq_events WHERE record_id = $1", uuid.UUID(record_id))
        assert len(dlq_rows) == 1
        everything = dlq[0][1].decode() + json.dumps([dict(x) for x in ledger + dlq_rows], default=str)
        everything += normalizer.logs()
        for value in canaries.values():
            assert value not in everything

        # The offset was committed after the DLQ publish: nothing left to redeliver.
        topic = isolated_kafka["TOPIC_RECORD_INGESTED_V2"]

        async def committed() -> bool:
            return committed_total(stack_env["KAFKA_BROKERS"], isolated_kafka["KAFKA_CONSUMER_GROUP"], topic, 3) == 1

        await eventually(committed, timeout=20, interval=0.5)
    finally:
        normalizer.stop()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["missing", "altered"])
async def test_a_missing_or_altered_raw_object_goes_to_the_dlq_without_retries(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, fault: str
) -> None:
    settings = make_settings(stack_env, **isolated_kafka, MAX_ATTEMPTS="5")
    dsn = stack_env["DATABASE_URL"]
    source = f"raw-{fault}-{unique}"
    async with running_app(settings, INGEST_AND_PUBLISH) as client:
        r = await client.post("/v1/ingest", json=v1_body(source), headers={**DEV, "Idempotency-Key": f"{unique}-r"})
        assert r.status_code == 202
        record_id = r.json()["record_id"]

        async def published() -> bool:
            return await fetchval(dsn, "SELECT published_at FROM outbox_events WHERE key=$1", record_id) is not None

        await eventually(published, timeout=30)
    store = AiobotocoreObjectStore(settings.object_store)
    key = f"{source}/{record_id}.json"
    try:
        if fault == "missing":
            await store.delete(key)
        else:
            original = await store.get(key)
            await store.put(key, original.replace(b"Pat0", b"Pax0"))  # same size, other bytes
    finally:
        await store.close()

    async with running_app(settings, NORMALIZE):
        async def dead() -> bool:
            return await fetchval(dsn, "SELECT status FROM processing_stage_state WHERE record_id=$1",
                                  uuid.UUID(record_id)) == "dlq"

        await eventually(dead, timeout=30)
    attempts = await fetch(dsn, "SELECT error_stage, error_type, transient FROM processing_attempts "
                                "WHERE record_id = $1", uuid.UUID(record_id))
    assert len(attempts) == 1, "a permanent error must not be retried"
    assert attempts[0]["transient"] is False
    assert attempts[0]["error_stage"] == ("fetch" if fault == "missing" else "verify")
    dlq = read_all(stack_env["KAFKA_BROKERS"], isolated_kafka["KAFKA_DLQ_TOPIC_V1"], expect=1)
    assert json.loads(dlq[0][1])["error"]["stage"] == attempts[0]["error_stage"]
    assert await canonical_count(dsn, source) == 0


@pytest.mark.timeout(300)
async def test_the_same_event_delivered_twice_gives_one_canonical_row(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    settings = make_settings(stack_env, **isolated_kafka)
    dsn = stack_env["DATABASE_URL"]
    source = f"redeliver-{unique}"
    async with running_app(settings) as client:
        ids = []
        for n in range(5):
            r = await client.post("/v1/ingest", json=v1_body(source, n),
                                  headers={**DEV, "Idempotency-Key": f"{unique}-{n}"})
            ids.append(r.json()["record_id"])

        async def all_in() -> bool:
            return await canonical_count(dsn, source) == 5

        await eventually(all_in, timeout=30)
    # Offsets reset: a new consumer group reads the topic from the beginning.
    again = make_settings(stack_env, **{**isolated_kafka, "KAFKA_CONSUMER_GROUP": f"again-{unique}"})
    async with running_app(again, NORMALIZE):
        async def reprocessed() -> bool:
            n = await fetchval(dsn, "SELECT count(*) FROM processing_attempts WHERE record_id = ANY($1) "
                                    "AND result = 'duplicate'", [uuid.UUID(i) for i in ids])
            return bool(n == 5)

        await eventually(reprocessed, timeout=30)
    assert await canonical_count(dsn, source) == 5
    rows = await fetch(dsn, "SELECT record_id, count(*) AS n FROM canonical_records WHERE source=$1 GROUP BY 1",
                       source)
    assert all(r["n"] == 1 for r in rows)


@pytest.mark.timeout(400)
async def test_kill_9_of_the_normalizer_mid_batch_loses_and_duplicates_nothing(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, tmp_path: Path
) -> None:
    env = {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET}
    dsn = stack_env["DATABASE_URL"]
    source = f"kill-{unique}"
    total = 800  # enough that the kill lands mid-backlog even at full normalizer speed
    settings = make_settings(stack_env, **isolated_kafka)
    async with running_app(settings, INGEST_AND_PUBLISH) as client:
        sem = asyncio.Semaphore(16)

        async def send(n: int) -> None:
            async with sem:
                r = await client.post("/v1/ingest", json=v1_body(source, n),
                                      headers={**DEV, "Idempotency-Key": f"{unique}-{n}"})
                assert r.status_code == 202

        await asyncio.gather(*(send(n) for n in range(total)))

        async def backlog_published() -> bool:
            n = await fetchval(dsn, "SELECT count(*) FROM outbox_events o JOIN raw_object_manifest m "
                                    "ON m.record_id::text = o.key WHERE m.source = $1 AND o.published_at IS NOT NULL",
                               source)
            return bool(n == total)

        await eventually(backlog_published, timeout=60)

    first = ServeProcess(env, "normalizer,tokenizer", tmp_path, name="normalizer-1").start()
    first.wait_healthy()

    async def some_done() -> bool:
        return await canonical_count(dsn, source) >= 20

    await eventually(some_done, timeout=60, interval=0.05)
    first.signal(signal.SIGKILL)
    first.wait(timeout=10)
    done_at_kill = await canonical_count(dsn, source)
    assert done_at_kill < total, "the kill came too late to be mid-batch"

    second = ServeProcess(env, "normalizer,tokenizer", tmp_path, name="normalizer-2").start()
    try:
        second.wait_healthy()

        async def all_done() -> bool:
            return await canonical_count(dsn, source) == total

        await eventually(all_done, timeout=120, interval=0.5)
    finally:
        second.stop()
    distinct = await fetchval(dsn, "SELECT count(DISTINCT record_id) FROM canonical_records WHERE source=$1", source)
    assert distinct == total
    missing = await fetchval(dsn, "SELECT count(*) FROM raw_object_manifest m WHERE m.source=$1 AND NOT EXISTS "
                                  "(SELECT 1 FROM canonical_records c WHERE c.record_id = m.record_id)", source)
    assert missing == 0


@pytest.mark.timeout(300)
async def test_two_publishers_on_one_backlog_publish_every_row_exactly_once(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    settings = make_settings(stack_env, **isolated_kafka, OUTBOX_BATCH_SIZE="50")
    dsn = stack_env["DATABASE_URL"]
    source = f"pub2-{unique}"
    total = 400
    async with running_app(settings, INGEST_ONLY) as client:
        for n in range(total):
            r = await client.post("/v1/ingest", json=v1_body(source, n),
                                  headers={**DEV, "Idempotency-Key": f"{unique}-{n}"})
            assert r.status_code == 202
    pending = await fetchval(dsn, "SELECT count(*) FROM outbox_events WHERE published_at IS NULL AND topic = $1",
                             isolated_kafka["TOPIC_RECORD_INGESTED_V1"])
    assert pending == total
    publish_only = frozenset({Role.PUBLISHER})
    async with running_app(settings, publish_only), running_app(settings, publish_only):
        async def drained() -> bool:
            n = await fetchval(dsn, "SELECT count(*) FROM outbox_events WHERE published_at IS NULL AND topic = $1",
                               isolated_kafka["TOPIC_RECORD_INGESTED_V1"])
            return bool(n == 0)

        await eventually(drained, timeout=60)
    topic = isolated_kafka["TOPIC_RECORD_INGESTED_V1"]
    assert end_offsets_total(stack_env["KAFKA_BROKERS"], topic, 3) == total
    keys = [k for k, _ in read_all(stack_env["KAFKA_BROKERS"], topic, expect=total, timeout=30)]
    assert len(keys) == total
    assert len(set(keys)) == total
    attempts = await fetch(dsn, "SELECT attempts FROM outbox_events WHERE topic = $1", topic)
    assert {a["attempts"] for a in attempts} == {1}


@pytest.mark.timeout(300)
async def test_rows_for_a_missing_topic_stay_pending_without_blocking_the_others(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    from tests.support.app import LogCapture

    # Batches of 10 behind 200 older rows (lower ids) for a topic that does not exist: twenty
    # batches in which nothing can be sent. Were that taken for "Kafka is down", the
    # publisher's own backoff (capped at 10 s) would hold the healthy row back for minutes.
    settings = make_settings(stack_env, **isolated_kafka, OUTBOX_BATCH_SIZE="10")
    dsn = stack_env["DATABASE_URL"]
    missing_topic = f"missing-{unique}"
    await fetch(dsn, "INSERT INTO outbox_events (topic, key, payload) SELECT $1, gen_random_uuid()::text, "
                     "'{\"n\": 1}'::jsonb FROM generate_series(1, 200)", missing_topic)
    logs = LogCapture()
    try:
        async with running_app(settings, INGEST_AND_PUBLISH, logs=logs) as client:
            r = await client.post("/v1/ingest", json=v1_body(f"hol-{unique}"),
                                  headers={**DEV, "Idempotency-Key": f"{unique}-hol"})
            record_id = r.json()["record_id"]

            async def published() -> bool:
                return await fetchval(dsn, "SELECT published_at FROM outbox_events WHERE key=$1",
                                      record_id) is not None

            await eventually(published, timeout=60)
        stuck = await fetch(dsn, "SELECT published_at, attempts, last_error FROM outbox_events WHERE topic=$1",
                            missing_topic)
        assert all(s["published_at"] is None for s in stuck)
        assert all(s["attempts"] >= 1 and s["last_error"] for s in stuck)
        lines = [json.loads(line) for line in logs.text().splitlines() if "outbox publish failed" in line]
        assert lines
        assert lines[0]["error_type"]
    finally:
        await fetch(dsn, "DELETE FROM outbox_events WHERE topic=$1", missing_topic)


STALL = """
CREATE OR REPLACE FUNCTION test_transient_write_fault() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_terminate_backend(pg_backend_pid());
  RETURN NEW;
END $$
"""


@pytest.mark.timeout(300)
async def test_a_record_in_retry_backoff_does_not_stall_the_records_behind_it(
    stack: Stack, stack_env: dict[str, str], unique: str
) -> None:
    from exchange.adapters.kafka import ensure_topics

    v1, v2 = f"s{unique}.v1", f"s{unique}.v2"
    ensure_topics(stack.kafka.brokers, [v1, v2, f"{v1}.dlq", f"{v2}.dlq"], partitions=1)  # one partition: strict order
    overrides = {"TOPIC_RECORD_INGESTED_V1": v1, "TOPIC_RECORD_INGESTED_V2": v2, "KAFKA_DLQ_TOPIC_V1": f"{v1}.dlq",
                 "KAFKA_DLQ_TOPIC_V2": f"{v2}.dlq", "KAFKA_TOPICS": f"{v1},{v2}", "KAFKA_CONSUMER_GROUP": f"g{unique}",
                 "MAX_ATTEMPTS": "6", "BACKOFF_BASE_MS": "1500"}
    settings = make_settings(stack_env, **overrides)
    dsn = stack_env["DATABASE_URL"]
    slow, fast = f"stall-{unique}", f"flow-{unique}"
    # The first record's canonical write fails with a lost connection (transient) until the fault is lifted.
    await fetch(dsn, STALL)
    await fetch(dsn, f"CREATE TRIGGER stall_{unique} BEFORE INSERT ON canonical_records FOR EACH ROW "
                     f"WHEN (NEW.source = '{slow}') EXECUTE FUNCTION test_transient_write_fault()")
    try:
        async with running_app(settings) as client:
            r = await client.post("/v1/ingest", json=v1_body(slow), headers={**DEV, "Idempotency-Key": f"{unique}-s"})
            stalled = r.json()["record_id"]
            for n in range(5):
                r = await client.post("/v1/ingest", json=v1_body(fast, n),
                                      headers={**DEV, "Idempotency-Key": f"{unique}-f{n}"})
                assert r.status_code == 202

            async def behind_done() -> bool:
                return await canonical_count(dsn, fast) == 5

            await eventually(behind_done, timeout=30)
            # The records behind it finished while it waits out its backoff...
            state = await fetchval(dsn, "SELECT status FROM processing_stage_state WHERE record_id=$1",
                                   uuid.UUID(stalled))
            assert state == "failed_retryable"
            # ...and the committed offset has not moved past it (offset 0 of the only partition).
            assert committed_total(stack_env["KAFKA_BROKERS"], f"g{unique}", v1, 1) == 0

            await fetch(dsn, f"DROP TRIGGER stall_{unique} ON canonical_records")

            async def recovered() -> bool:
                return await canonical_count(dsn, slow) == 1

            await eventually(recovered, timeout=60)

            async def committed_all() -> bool:
                return committed_total(stack_env["KAFKA_BROKERS"], f"g{unique}", v1, 1) == 6

            await eventually(committed_all, timeout=20, interval=0.5)
    finally:
        await fetch(dsn, f"DROP TRIGGER IF EXISTS stall_{unique} ON canonical_records")
