"""Failure paths of the pipeline, caused for real: servers stopped, processes killed,
raw objects removed or altered, events delivered twice."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from exchange.adapters.objectstore import AiobotocoreObjectStore
from exchange.roles import Role
from exchange_stack import Stack
from tests.support.app import DEV, TEST_JWT_SECRET, LogCapture, make_settings, running_app
from tests.support.db import eventually, fetch, fetchval
from tests.support.kafka import committed_total, end_offsets_total, read_all
from tests.support.load import SteadyIngest
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
async def test_a_remote_tokenizer_killed_and_restarted_is_waited_out_and_nothing_is_dead_lettered(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, canaries: dict[str, str],
    tmp_path: Path,
) -> None:
    """Split roles: the normalizer process calls its tokenizer process over TOKENIZER_URL. The
    tokenizer is killed mid-flow and started again: the normalizer holds its records (health and
    metrics say it waits for the tokenizer) and spends none of their three attempts on it; every
    record ends canonical, none in the DLQ."""
    env = {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET, "MAX_ATTEMPTS": "3",
           "BACKOFF_BASE_MS": "100"}
    dsn = stack_env["DATABASE_URL"]
    source = f"tokdown-{unique}"
    tokenizer = ServeProcess(env, "tokenizer", tmp_path, name="tokenizer").start()
    normalizer = ServeProcess({**env, "TOKENIZER_URL": tokenizer.url}, "normalizer", tmp_path, name="normalizer")
    restarted: ServeProcess | None = None
    try:
        tokenizer.wait_healthy()
        normalizer.start().wait_healthy()
        settings = make_settings(stack_env, **isolated_kafka)
        async with running_app(settings, INGEST_AND_PUBLISH) as client:

            async def ingest(n: int) -> str:
                body = v2_body(source, canaries)
                body["payload"]["visit"] = n
                r = await client.post("/v2/ingest", json=body, headers={**DEV, "Idempotency-Key": f"{unique}-{n}"})
                assert r.status_code == 202, r.text
                return str(r.json()["record_id"])

            record_ids = [await ingest(n) for n in range(20)]

            async def canonical(n: int) -> bool:
                return await canonical_count(dsn, source) == n

            await eventually(lambda: canonical(20), timeout=60, interval=0.2)
            tokenizer.signal(signal.SIGKILL)
            tokenizer.wait(timeout=10)
            record_ids += [await ingest(n) for n in range(20, 50)]

            async def waiting() -> bool:
                _, health = await asyncio.to_thread(normalizer.get, "/health/detailed")
                task = health["tasks"]["normalizer"]
                return bool(task["state"] == "waiting" and task.get("waiting_for") == ["tokenizer"])

            await eventually(waiting, timeout=60, interval=0.2)
            _, metrics = await asyncio.to_thread(normalizer.get_text, "/metrics")
            assert 'exchange_task_waiting_for_dependency{dependency="tokenizer",task="normalizer"} 1.0' in metrics
            await asyncio.sleep(3)  # ten times what three attempts at 100 ms of backoff would take
            assert await canonical_count(dsn, source) == 20

            restarted = ServeProcess(env, "tokenizer", tmp_path, name="tokenizer-again", port=tokenizer.port)
            restarted.start().wait_healthy()
            await eventually(lambda: canonical(50), timeout=90, interval=0.3)

        await _assert_every_accepted_record_is_canonical_once(
            dsn, stack_env["KAFKA_BROKERS"], isolated_kafka, source, {str(i): r for i, r in enumerate(record_ids)})
        # The remote tokenizer sent linkage tokens too: the one canary patient is one person.
        persons = await fetch(dsn, "SELECT DISTINCT person_id FROM record_persons WHERE record_id = ANY($1::uuid[])",
                              record_ids)
        assert len(persons) == 1
        assert await fetchval(dsn, "SELECT count(DISTINCT record_id) FROM linkage_tokens "
                                   "WHERE record_id = ANY($1::uuid[])", record_ids) == 50
        # Records did meet the outage (a failed attempt each at most: then they waited for the gate).
        failed = await fetch(dsn, "SELECT record_id, error_type, error_stage, transient FROM processing_attempts "
                                  "WHERE record_id = ANY($1::uuid[]) AND status = 'failed'", record_ids)
        assert failed
        assert {(f["error_type"], f["error_stage"], f["transient"]) for f in failed} == {
            ("TokenizerUnavailable", "tokenize", True)}
        _, health = await asyncio.to_thread(normalizer.get, "/health/detailed")
        assert health["tasks"]["normalizer"]["state"] == "running"
        assert health["dependencies"]["tokenizer"]["status"] == "up"
        for value in canaries.values():
            assert value not in normalizer.logs()
    finally:
        normalizer.stop()
        tokenizer.stop()
        if restarted is not None:
            restarted.stop()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["missing", "altered"])
async def test_a_missing_or_altered_raw_object_goes_to_the_dlq_without_retries_and_pii_free(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, fault: str, canaries: dict[str, str]
) -> None:
    settings = make_settings(stack_env, **isolated_kafka, MAX_ATTEMPTS="5")
    dsn = stack_env["DATABASE_URL"]
    brokers = stack_env["KAFKA_BROKERS"]
    source = f"raw-{fault}-{unique}"
    async with running_app(settings, INGEST_AND_PUBLISH) as client:
        r = await client.post("/v2/ingest", json=v2_body(source, canaries),
                              headers={**DEV, "Idempotency-Key": f"{unique}-r"})
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
            altered = original.replace(b'"visit":1', b'"visit":2').replace(b'"visit": 1', b'"visit": 2')
            assert altered != original
            await store.put(key, altered)  # same size, other bytes
    finally:
        await store.close()

    logs = LogCapture()
    async with running_app(settings, NORMALIZE, logs=logs):
        async def dead() -> bool:
            return await fetchval(dsn, "SELECT status FROM processing_stage_state WHERE record_id=$1",
                                  uuid.UUID(record_id)) == "dlq"

        await eventually(dead, timeout=30)

        # The offset was committed after the DLQ publish and its row: nothing left to redeliver.
        async def committed() -> bool:
            topic = isolated_kafka["TOPIC_RECORD_INGESTED_V2"]
            return committed_total(brokers, isolated_kafka["KAFKA_CONSUMER_GROUP"], topic, 3) == 1

        await eventually(committed, timeout=20, interval=0.5)
    stage = "fetch" if fault == "missing" else "verify"
    attempts = await fetch(dsn, "SELECT * FROM processing_attempts WHERE record_id = $1", uuid.UUID(record_id))
    assert len(attempts) == 1, "a permanent error must not be retried"
    assert attempts[0]["transient"] is False
    assert attempts[0]["error_stage"] == stage
    assert attempts[0]["status"] == "dlq_published"
    dlq = read_all(brokers, isolated_kafka["KAFKA_DLQ_TOPIC_V2"], expect=1)
    assert len(dlq) == 1
    envelope = json.loads(dlq[0][1])
    assert set(envelope) == {"original_event", "error", "attempts", "failed_at"}
    assert envelope["error"]["stage"] == stage
    assert envelope["attempts"] == 1
    assert envelope["original_event"]["record_id"] == record_id
    assert envelope["original_event"]["event_version"] == "2"
    assert read_all(brokers, isolated_kafka["KAFKA_DLQ_TOPIC_V1"], timeout=3) == []  # the version's DLQ only
    assert await canonical_count(dsn, source) == 0
    dlq_rows = await fetch(dsn, "SELECT * FROM dlq_events WHERE record_id = $1", uuid.UUID(record_id))
    assert len(dlq_rows) == 1
    # PII-free: envelope, DLQ table, ledger and the normalizer's logs hold no canary.
    everything = dlq[0][1].decode() + json.dumps([dict(x) for x in attempts + dlq_rows], default=str) + logs.text()
    for value in canaries.values():
        assert value not in everything


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


# -- dependency outages: the normalizer waits, nothing is dead-lettered, nothing is lost ---------


async def _normalizer_waiting_for(http: httpx.AsyncClient, dependency: str) -> bool:
    health = (await http.get("/health/detailed")).json()
    task = health["tasks"]["normalizer"]
    return bool(task["state"] == "waiting" and dependency in task.get("waiting_for", []))


async def _metric(http: httpx.AsyncClient, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith(f"{name}{{") and line.split("}")[0].removeprefix(f"{name}{{") == wanted:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _a_backlog_in_kafka(dsn: str, source: str, at_least: int) -> None:
    """Wait until ``at_least`` records of ``source`` are published and not yet canonical."""

    async def backlog() -> bool:
        published = await fetchval(
            dsn, "SELECT count(*) FROM outbox_events o JOIN raw_object_manifest m ON m.record_id::text = o.key "
                 "WHERE m.source = $1 AND o.published_at IS NOT NULL", source)
        return bool(published - await canonical_count(dsn, source) >= at_least)

    await eventually(backlog, timeout=120, interval=0.2)


async def _assert_every_accepted_record_is_canonical_once(
    dsn: str, brokers: str, isolated_kafka: dict[str, str], source: str, accepted: dict[str, str]
) -> None:
    record_ids = sorted(set(accepted.values()))
    assert len(record_ids) == len(accepted)  # one record per key, however often it was retried

    async def all_canonical() -> bool:
        return await canonical_count(dsn, source) >= len(record_ids)

    await eventually(all_canonical, timeout=240, interval=0.5)
    rows = await fetch(dsn, "SELECT record_id::text AS record_id FROM canonical_records WHERE source = $1", source)
    assert sorted(r["record_id"] for r in rows) == record_ids  # each exactly once, nothing else
    dead = await fetchval(dsn, "SELECT count(*) FROM dlq_events WHERE record_id = ANY($1::uuid[])", record_ids)
    assert dead == 0, "a record was dead-lettered because a dependency was down"
    states = await fetch(dsn, "SELECT status, count(*) AS n FROM processing_stage_state "
                              "WHERE record_id = ANY($1::uuid[]) GROUP BY 1", record_ids)
    assert {s["status"]: s["n"] for s in states} == {"succeeded": len(record_ids)}
    for topic in (isolated_kafka["KAFKA_DLQ_TOPIC_V1"], isolated_kafka["KAFKA_DLQ_TOPIC_V2"]):
        assert read_all(brokers, topic, timeout=3) == []


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("service", "dependency"), [("postgres", "database"), ("s3", "object_store")])
async def test_a_dependency_stopped_under_load_is_waited_out_and_no_record_is_lost_or_dead_lettered(
    stack: Stack, stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, tmp_path: Path,
    service: str, dependency: str,
) -> None:
    """The probe's fault: PostgreSQL (or S3) stopped for real while a server with every role
    ingests and normalizes. Every ingest answer is a 202 or a 503 problem+json naming the
    dependency (never a 500); the normalizer waits for it (health and metrics say so) instead of
    spending the records' attempts; afterwards every accepted record has exactly one canonical
    row and none was dead-lettered."""
    # The normalizer goes in waves while a request is in flight, so a backlog builds up in Kafka:
    # the outage then finds records in every stage (ledger start, fetch, tokenize, write). A retry
    # waits for a wave too (~1 s apart, 64 records each), so two attempts are what a record can
    # spend during the outage: were outage failures charged, records would be dead-lettered.
    env = {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET, "NORMALIZER_YIELD_AT": "1",
           "MAX_ATTEMPTS": "2"}
    dsn = stack_env["DATABASE_URL"]
    source = f"{service}down-{unique}"
    server = ServeProcess(env, "all", tmp_path, name="all").start()
    try:
        server.wait_healthy()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            load = SteadyIngest(http, source, unique)
            load.start()
            try:
                await asyncio.wait_for(load.accepted_at_least(200), timeout=120)
                await _a_backlog_in_kafka(dsn, source, 50)
                await asyncio.to_thread(stack.stop, service)
                try:
                    await eventually(lambda: _normalizer_waiting_for(http, dependency), timeout=60, interval=0.2)
                    assert await _metric(http, "exchange_task_waiting_for_dependency", task="normalizer",
                                         dependency=dependency) == 1
                    # Down for longer than a record's attempts take.
                    await asyncio.sleep(8)
                finally:
                    await asyncio.to_thread(stack.start, service)
                await asyncio.wait_for(load.accepted_at_least(len(load.accepted) + 100), timeout=120)
            finally:
                await load.stop()

            assert {a.status for a in load.answers} <= {202, 503}, load.statuses()
            unavailable = [a for a in load.answers if a.status == 503]
            assert unavailable, "the load never met the outage"
            for answer in unavailable:
                assert answer.content_type.startswith("application/problem+json")
                assert answer.body["dependency"] == dependency
            await _assert_every_accepted_record_is_canonical_once(
                dsn, stack_env["KAFKA_BROKERS"], isolated_kafka, source, load.accepted)
            assert not await _normalizer_waiting_for(http, dependency)
            assert await _metric(http, "exchange_dependency_outages_total", task="normalizer",
                                 dependency=dependency) >= 1
            assert await _metric(http, "exchange_task_waiting_for_dependency", task="normalizer",
                                 dependency=dependency) == 0
    finally:
        server.stop()
