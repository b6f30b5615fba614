"""Replay, verify, reconcile (+repair) and DLQ tooling, end to end on the real stack."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from exchange.adapters.objectstore import AiobotocoreObjectStore, make_object_store
from exchange.adapters.postgres import Database
from exchange.bootstrap import admin_tools
from exchange.errors import DatabaseUnavailable
from exchange.ingest import IngestCommand, IngestService
from exchange.ops.metrics import Metrics
from exchange.replay import QUARANTINE_PREFIX
from exchange.roles import Role
from tests.support.app import DEV, TEST_JWT_SECRET, bearer, make_settings, running_app
from tests.support.db import eventually, fetch, fetchval

INGEST = frozenset({Role.INGEST})
PIPELINE = frozenset({Role.PUBLISHER, Role.NORMALIZER, Role.TOKENIZER})


def v1(source: str, n: int) -> dict[str, Any]:
    return {"source": source, "record_type": "encounter",
            "patient": {"first_name": f"Ann{n}", "last_name": "Ops", "dob": "1970-05-06"}, "payload": {"n": n}}


def v2(source: str, n: int) -> dict[str, Any]:
    return {"source": source, "record_kind": "lab_result", "schema_hint": "partnerA.v1",
            "patient": {"given_name": f"Bob{n}", "family_name": "Ops", "dob": "1971-05-06"}, "payload": {"n": n}}


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exchange.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout, check=False)


async def canonical(dsn: str, source: str) -> int:
    return int(await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE source=$1", source))


async def ingest_many(client: Any, source: str, unique: str, bodies: list[dict[str, Any]]) -> list[str]:
    ids = []
    for n, body in enumerate(bodies):
        version = "v2" if "record_kind" in body else "v1"
        r = await client.post(f"/{version}/ingest", json=body, headers={**DEV, "Idempotency-Key": f"{unique}-{n}"})
        assert r.status_code == 202, r.text
        ids.append(r.json()["record_id"])
    return ids


@pytest.mark.timeout(400)
async def test_milestone_5_replay_rebuilds_canonical_and_verify_finds_gaps(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    settings = make_settings(stack_env, **isolated_kafka)
    env = {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET}
    dsn = stack_env["DATABASE_URL"]
    source = f"m5-{unique}"
    n = 12
    async with running_app(settings) as client:
        await ingest_many(client, source, unique, [v1(source, i) for i in range(n)])

        async def all_in() -> bool:
            return await canonical(dsn, source) == n

        await eventually(all_in, timeout=60)
        await fetch(dsn, "DELETE FROM derived_patient_record_index WHERE source=$1", source)
        await fetch(dsn, "DELETE FROM canonical_records WHERE source=$1", source)
        assert await canonical(dsn, source) == 0

        out = cli(env, "replay", "--source", source)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["emitted"] == n
        assert "replay progress" in out.stderr  # plain progress lines when not on a TTY

        await eventually(all_in, timeout=60)

    verify = cli(env, "replay", "--source", source, "--verify")
    assert verify.returncode == 0, verify.stderr
    report = json.loads(verify.stdout)
    assert report == {"source": source, "raw_count": n, "canonical_count": n, "missing_count": 0, "missing": []}

    gone = (await fetch(dsn, "SELECT record_id::text AS id FROM canonical_records WHERE source=$1 LIMIT 1",
                        source))[0]["id"]
    await fetch(dsn, "DELETE FROM canonical_records WHERE record_id=$1::uuid", gone)
    verify = cli(env, "replay", "--source", source, "--verify")
    assert verify.returncode == 1
    report = json.loads(verify.stdout)
    assert report["missing_count"] == 1
    assert report["missing"] == [gone]


async def _replay(
    settings: Any, source: str, *, read_raw: bool = False, emit: str = "auto"
) -> tuple[list[dict[str, Any]], int]:
    """The replay's events (outbox payloads, in order) and how many objects it read."""
    async with admin_tools(settings) as admin:
        job = await admin.create_job("replay", {"source": source, "emit_version": emit, "read_raw": read_raw},
                                     "test")
        before = await fetchval(settings.database.dsn, "SELECT coalesce(max(id), 0) FROM outbox_events")
        result = await admin.run_job(job)
    rows = await fetch(settings.database.dsn, "SELECT payload FROM outbox_events WHERE id > $1 AND key IN "
                       "(SELECT record_id::text FROM raw_object_manifest WHERE source=$2) ORDER BY id", before, source)
    return [r["payload"] for r in rows], int(result["read"])


async def _replay_payloads(settings: Any, source: str) -> list[dict[str, Any]]:
    return (await _replay(settings, source))[0]


@pytest.mark.timeout(300)
async def test_replay_is_deterministic_and_auto_picks_each_objects_version(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    settings = make_settings(stack_env, **isolated_kafka)
    dsn = stack_env["DATABASE_URL"]
    source = f"mixed-{unique}"
    bodies = [v1(source, 0), v2(source, 1), v1(source, 2), v2(source, 3)]
    async with running_app(settings, INGEST) as client:
        ids = await ingest_many(client, source, unique, bodies)

    first, read = await _replay(settings, source)
    second = await _replay_payloads(settings, source)
    from_objects, read_raw = await _replay(settings, source, read_raw=True)
    assert len(first) == len(second) == 4
    assert first == second  # same events for the same raw objects
    # Built from what ingest kept, without a GET, and the same as reading every object.
    assert (read, read_raw) == (0, 4)
    assert from_objects == first
    for emit in ("v1", "v2"):  # forced versions too (v2 skips the v1 objects either way)
        kept, _ = await _replay(settings, source, emit=emit)
        assert kept == (await _replay(settings, source, emit=emit, read_raw=True))[0]
        assert len(kept) == (4 if emit == "v1" else 2)
    assert [p["record_id"] for p in first] == sorted(ids)  # lexicographic key order
    versions = {p["record_id"]: p["event_version"] for p in first}
    assert versions == {ids[0]: "1", ids[1]: "2", ids[2]: "1", ids[3]: "2"}

    async with running_app(settings, PIPELINE):
        async def all_in() -> bool:
            return await canonical(dsn, source) == 4

        await eventually(all_in, timeout=60)
    rows = await fetch(dsn, "SELECT record_id::text AS id, event_version, record_kind, schema_hint "
                            "FROM canonical_records WHERE source=$1", source)
    by_id = {r["id"]: r for r in rows}
    assert by_id[ids[0]]["event_version"] == "1"
    assert by_id[ids[0]]["record_kind"] is None
    assert by_id[ids[1]]["event_version"] == "2"
    assert by_id[ids[1]]["record_kind"] == "lab_result"
    assert by_id[ids[1]]["schema_hint"] == "partnerA.v1"


@pytest.mark.timeout(300)
async def test_replay_reads_an_object_changed_since_ingest_or_unknown_to_the_manifest(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    """The manifest stands in for an object only while the store lists it with the ETag and
    size ingest stored it with: a rewritten object, and one whose row has no ETag (written
    before the manifest kept them), are read, and their events carry what they hold now."""
    settings = make_settings(stack_env, **isolated_kafka)
    dsn = stack_env["DATABASE_URL"]
    source = f"changed-{unique}"
    bodies = [v1(source, 0), v2(source, 1), v1(source, 2)]
    async with running_app(settings, INGEST) as client:
        ids = await ingest_many(client, source, unique, bodies)
    rows = await fetch(dsn, "SELECT record_id::text AS id, object_key, etag, sha256, event_version, record_kind, "
                            "schema_hint FROM raw_object_manifest WHERE source=$1", source)
    kept = {r["id"]: r for r in rows}
    rewritten = v2(source, 7)  # the v1 object now holds a v2 body
    rewritten_raw = json.dumps(rewritten).encode()
    store = make_object_store(settings.object_store)
    try:
        for rid, body in zip(ids, bodies, strict=True):  # what ingest kept: the PUT's ETag (MD5 here), v2 fields
            raw = await store.get(kept[rid]["object_key"])
            assert kept[rid]["etag"] == hashlib.md5(raw).hexdigest()  # noqa: S324 - SeaweedFS's ETag, not security
            assert kept[rid]["sha256"] == hashlib.sha256(raw).hexdigest()
            assert (kept[rid]["event_version"], kept[rid]["record_kind"], kept[rid]["schema_hint"]) == (
                ("2", "lab_result", "partnerA.v1") if "record_kind" in body else ("1", None, None))
        await store.put(kept[ids[0]]["object_key"], rewritten_raw)
    finally:
        await store.close()
    await fetch(dsn, "UPDATE raw_object_manifest SET etag = NULL WHERE record_id = $1::uuid", ids[2])

    payloads, read = await _replay(settings, source)
    assert read == 2
    by_id = {p["record_id"]: p for p in payloads}
    assert by_id[ids[0]]["event_version"] == "2"
    assert by_id[ids[0]]["raw_object"]["sha256"] == hashlib.sha256(rewritten_raw).hexdigest()
    assert by_id[ids[0]]["raw_object"]["size_bytes"] == len(rewritten_raw)
    assert by_id[ids[1]]["raw_object"]["sha256"] == kept[ids[1]]["sha256"]
    assert (await _replay(settings, source, read_raw=True))[0] == payloads


KILL_SELF = """
CREATE OR REPLACE FUNCTION test_crash_after_s3_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_terminate_backend(pg_backend_pid());
  RETURN NEW;
END $$
"""


@pytest.mark.timeout(300)
async def test_crash_between_s3_write_and_commit_is_found_and_quarantined_by_reconcile(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    settings = make_settings(stack_env, **isolated_kafka)
    env = {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET}
    dsn = stack_env["DATABASE_URL"]
    source = f"crash-{unique}"
    # The fault hook: the database connection dies inside the ingest transaction, after the S3 PUT.
    await fetch(dsn, KILL_SELF)
    await fetch(dsn, f"CREATE TRIGGER crash_{unique} BEFORE INSERT ON raw_object_manifest FOR EACH ROW "
                     f"WHEN (NEW.source = '{source}') EXECUTE FUNCTION test_crash_after_s3_write()")
    try:
        async with running_app(settings, INGEST) as client:
            r = await client.post("/v1/ingest", json=v1(source, 0), headers={**DEV, "Idempotency-Key": f"{unique}-c"})
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
    finally:
        await fetch(dsn, f"DROP TRIGGER crash_{unique} ON raw_object_manifest")
    assert await fetchval(dsn, "SELECT count(*) FROM raw_object_manifest WHERE source=$1", source) == 0
    assert await fetchval(dsn, "SELECT count(*) FROM idempotency_keys WHERE key=$1", f"{unique}-c") == 0
    store = AiobotocoreObjectStore(settings.object_store)
    try:
        keys = [i.key async for i in store.list_objects(f"{source}/")]
        assert len(keys) == 1, "the raw object was written before the failed commit"

        out = cli(env, "reconcile", "--source", source, "--orphan-grace-seconds", "0")
        report = json.loads(out.stdout)
        assert report["orphans"]["count"] == 1
        assert report["clean"] is False
        assert [i.key async for i in store.list_objects(f"{source}/")] == keys  # report-only by default

        out = cli(env, "reconcile", "--source", source, "--repair", "--orphan-grace-seconds", "0")
        repaired = json.loads(out.stdout)
        assert repaired["repaired"]["quarantined"] == 1
        assert [i.key async for i in store.list_objects(f"{source}/")] == []
        assert [i.key async for i in store.list_objects(QUARANTINE_PREFIX + f"{source}/")] == [
            QUARANTINE_PREFIX + keys[0]
        ]  # moved, never deleted
        state = await fetchval(dsn, "SELECT state FROM raw_object_manifest WHERE source=$1", source)
        assert state == "orphaned"

        again = json.loads(cli(env, "reconcile", "--source", source, "--repair", "--orphan-grace-seconds", "0").stdout)
        assert again["clean"] is True
        assert again["repaired"] == {"re_emitted": 0, "quarantined": 0}
        table = cli(env, "reconcile", "--source", source, "--format", "table")
        assert "orphans" in table.stdout
    finally:
        await store.close()


@pytest.mark.timeout(300)
async def test_a_crash_mid_batch_fails_its_requests_with_no_rows_and_leaves_one_orphan_each(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    """Group commit (ADR 0003): the connection dies after the batch's PUTs, before its commit.

    The service is driven directly so that the requests surely arrive together."""
    settings = make_settings(stack_env, **isolated_kafka)
    env = {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET}
    dsn = stack_env["DATABASE_URL"]
    source = f"crash-batch-{unique}"
    commands = [IngestCommand(version=1, client_id="dev", idempotency_key=f"{unique}-b{n}",
                              body=json.dumps(v1(source, n)).encode(), correlation_id=f"crash-{unique}-{n}",
                              source=source) for n in range(8)]
    keys = [c.idempotency_key for c in commands]
    db = Database(settings.database)
    await db.start()
    store = make_object_store(settings.object_store)
    metrics = Metrics()
    service = IngestService(db, store, metrics=metrics, topic_v1=settings.kafka.topic_v1,
                            topic_v2=settings.kafka.topic_v2, retention_hours=24, schema_hints=("partnerA.v1",))
    try:
        await fetch(dsn, KILL_SELF)
        await fetch(dsn, f"CREATE TRIGGER crash_{unique} BEFORE INSERT ON raw_object_manifest FOR EACH ROW "
                         f"WHEN (NEW.source = '{source}') EXECUTE FUNCTION test_crash_after_s3_write()")
        try:
            results = await asyncio.gather(*(service.accept(c) for c in commands), return_exceptions=True)
        finally:
            await fetch(dsn, f"DROP TRIGGER crash_{unique} ON raw_object_manifest")
        batches = metrics.registry.get_sample_value("exchange_ingest_batch_size_count")
        assert batches is not None and batches < len(commands)  # they shared transactions
        assert all(isinstance(r, DatabaseUnavailable) for r in results), results  # each a 503
        assert await fetchval(dsn, "SELECT count(*) FROM raw_object_manifest WHERE source=$1", source) == 0
        assert await fetchval(dsn, "SELECT count(*) FROM idempotency_keys WHERE key = ANY($1::text[])", keys) == 0
        assert await fetchval(dsn, "SELECT count(*) FROM outbox_events WHERE payload->>'source' = $1", source) == 0

        report = json.loads(cli(env, "reconcile", "--source", source, "--orphan-grace-seconds", "0").stdout)
        assert report["orphans"]["count"] == len(commands)  # one object per request, without rows: found
        # The clients retry with their keys: nothing was stored for them, so each is a new record.
        retried = await asyncio.gather(*(service.accept(c) for c in commands))
        assert not any(r.replayed for r in retried)
        assert await fetchval(dsn, "SELECT count(*) FROM raw_object_manifest WHERE source=$1", source) == 8
    finally:
        await store.close()
        await db.close()


@pytest.mark.timeout(300)
async def test_reconcile_repair_re_emits_missing_canonical_rows_once(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    settings = make_settings(stack_env, **isolated_kafka)
    dsn = stack_env["DATABASE_URL"]
    source = f"rep-{unique}"
    async with running_app(settings) as client:
        await ingest_many(client, source, unique, [v1(source, i) for i in range(3)])

        async def three() -> bool:
            return await canonical(dsn, source) == 3

        await eventually(three, timeout=60)
        await fetch(dsn, "DELETE FROM canonical_records WHERE source=$1", source)
        async with admin_tools(settings) as admin:
            opts = {"source": source, "repair": False, "in_flight_s": 0}
            report = await admin.run_job(await admin.create_job("reconcile", opts, "test"))
            assert report["missing_canonical"]["count"] == 3
            repaired = await admin.run_job(await admin.create_job("reconcile", {**opts, "repair": True}, "test"))
            assert repaired["repaired"]["re_emitted"] == 3
            # Re-emitted records are in flight: a second repair has nothing to do.
            second = await admin.run_job(await admin.create_job(
                "reconcile", {"source": source, "repair": True}, "test"))
            assert second["repaired"]["re_emitted"] == 0
        await eventually(three, timeout=60)


@pytest.mark.timeout(400)
async def test_an_interrupted_replay_resumes_from_its_checkpoint_without_skipping(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, tmp_path: Path
) -> None:
    settings = make_settings(stack_env, **isolated_kafka)
    # A short lease: the killed run's lease runs out quickly, and --resume waits it out.
    env = {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET, "JOB_LEASE_S": "2"}
    dsn = stack_env["DATABASE_URL"]
    source = f"resume-{unique}"
    total = 3000
    store = AiobotocoreObjectStore(settings.object_store)
    ids = sorted(str(uuid.uuid4()) for _ in range(total))
    sem = asyncio.Semaphore(32)

    async def put(rid: str) -> None:
        async with sem:
            await store.put(f"{source}/{rid}.json", json.dumps(v1(source, 0)).encode())

    try:
        await asyncio.gather(*(put(r) for r in ids))
    finally:
        await store.close()

    proc = subprocess.Popen([sys.executable, "-m", "exchange.cli", "replay", "--source", source],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async def some_checkpoint() -> bool:
            row = await fetch(dsn, "SELECT j.job_run_id::text AS id, (c.checkpoint->>'done')::int AS done "
                                   "FROM job_runs j JOIN job_checkpoints c ON c.job_run_id = j.job_run_id "
                                   "WHERE j.params->>'source' = $1", source)
            return bool(row and row[0]["done"] > 0)

        await eventually(some_checkpoint, timeout=60, interval=0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    job = (await fetch(dsn, "SELECT job_run_id::text AS id, status FROM job_runs WHERE params->>'source'=$1",
                       source))[0]
    assert job["status"] == "running"  # killed: not finished
    emitted_before = await fetchval(dsn, "SELECT count(*) FROM outbox_events WHERE payload->>'source' = $1", source)
    assert 0 < emitted_before < total, "the kill should land mid-replay"

    out = cli(env, "replay", "--resume", job["id"])
    assert out.returncode == 0, out.stderr
    rows = await fetch(dsn, "SELECT key FROM outbox_events WHERE payload->>'source' = $1", source)
    keys = [r["key"] for r in rows]
    assert len(keys) == total  # none emitted twice by the replay itself
    assert sorted(keys) == ids  # none skipped
    assert await fetchval(dsn, "SELECT status FROM job_runs WHERE job_run_id=$1::uuid", job["id"]) == "succeeded"
    await fetch(dsn, "DELETE FROM outbox_events WHERE payload->>'source' = $1", source)


@pytest.mark.timeout(400)
async def test_dlq_reprocess_after_fixing_the_cause_and_resolve_with_audit(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    # The cause: the records' raw objects are gone when the normalizer reads them (a permanent
    # failure, dead-lettered at once). The fix: they are put back (restored from a backup).
    env = {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET}
    settings = make_settings(stack_env, **isolated_kafka)
    dsn = stack_env["DATABASE_URL"]
    source = f"dlq-{unique}"
    async with running_app(settings, frozenset({Role.INGEST, Role.PUBLISHER})) as client:
        ids = await ingest_many(client, source, unique, [v2(source, 0), v2(source, 1)])

        async def published() -> bool:
            n = await fetchval(dsn, "SELECT count(*) FROM outbox_events WHERE key = ANY($1) "
                                    "AND published_at IS NOT NULL", ids)
            return bool(n == 2)

        await eventually(published, timeout=30)
    store = AiobotocoreObjectStore(settings.object_store)
    backup: dict[str, bytes] = {}
    try:
        for record_id in ids:
            key = f"{source}/{record_id}.json"
            backup[key] = await store.get(key)
            await store.delete(key)
    finally:
        await store.close()
    async with running_app(settings, frozenset({Role.NORMALIZER, Role.TOKENIZER})):
        async def both_dead() -> bool:
            n = await fetchval(dsn, "SELECT count(*) FROM dlq_events WHERE record_id = ANY($1::uuid[])", ids)
            return bool(n == 2)

        await eventually(both_dead, timeout=60)
    entries = await fetch(dsn, "SELECT id, record_id::text AS rid FROM dlq_events WHERE record_id = ANY($1::uuid[]) "
                               "ORDER BY id", ids)
    first, second = entries[0]["id"], entries[1]["id"]

    listed = cli(env, "dlq", "list", "--stage", "fetch", "--since", "1h", "--json")
    assert listed.returncode == 0
    assert {e["id"] for e in json.loads(listed.stdout)} >= {first, second}
    inspected = json.loads(cli(env, "dlq", "inspect", str(first)).stdout)
    assert inspected["error_stage"] == "fetch"
    assert inspected["error_type"] == "RawObjectNotFound"
    assert len(inspected["ledger"]) == 1  # permanent: not retried
    report = json.loads(cli(env, "dlq", "report", "--hours", "1").stdout)
    assert report["by_stage"]["fetch"] >= 2

    # Fix the cause: the objects are back. Reprocess via the admin API.
    store = AiobotocoreObjectStore(settings.object_store)
    try:
        for key, body in backup.items():
            await store.put(key, body)
    finally:
        await store.close()
    async with running_app(settings, frozenset({Role.ADMIN, Role.PUBLISHER, Role.NORMALIZER, Role.TOKENIZER})) as c:
        admin = bearer(settings, sub="ops-alice", scopes="admin")
        r = await c.post(f"/admin/dlq/{first}/reprocess", headers=admin)
        assert r.status_code == 202, r.text

        async def fixed() -> bool:
            n = await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE record_id=$1::uuid",
                               entries[0]["rid"])
            return bool(n == 1)

        await eventually(fixed, timeout=60)
        r = await c.post(f"/admin/dlq/{first}/reprocess", headers=admin)
        assert r.status_code == 202
        await asyncio.sleep(2)

        r = await c.post(f"/admin/dlq/{second}/resolve", json={"reason": "partner resent it"}, headers=admin)
        assert r.status_code == 200
        missing = await c.post("/admin/dlq/999999999/reprocess", headers=admin)
        assert missing.status_code == 404
    assert await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE record_id=$1::uuid",
                          entries[0]["rid"]) == 1
    statuses = await fetch(dsn, "SELECT id, status, resolved_by, resolution_reason FROM dlq_events WHERE id = ANY($1)",
                           [first, second])
    by_id = {s["id"]: s for s in statuses}
    assert by_id[first]["status"] == "reprocessed"
    assert by_id[second]["status"] == "resolved"
    assert by_id[second]["resolved_by"] == "ops-alice"
    audit = await fetch(dsn, "SELECT actor, action, entity_id, details FROM audit_log WHERE entity_id = ANY($1) "
                             "ORDER BY id", [str(first), str(second)])
    actions = [(a["actor"], a["action"], a["entity_id"]) for a in audit]
    assert ("ops-alice", "dlq.resolve", str(second)) in actions
    assert actions.count(("ops-alice", "dlq.reprocess", str(first))) == 2
    assert any(a[1] == "dlq.inspect" and a[0].startswith("cli") for a in actions)
