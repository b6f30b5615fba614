"""A job whose owner was killed is taken over by the admin role once its lease runs out."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from exchange.adapters.objectstore import AiobotocoreObjectStore
from exchange.adapters.postgres import Database
from exchange.jobs import Jobs
from exchange.roles import Role
from tests.e2e.test_operations import v1
from tests.support.app import TEST_JWT_SECRET, make_settings, running_app
from tests.support.db import eventually, fetch, fetchval

LEASE_S = "2"


@pytest.mark.timeout(300)
async def test_a_killed_cli_replay_is_resumed_by_the_admin_role_after_its_lease_and_emits_each_record_once(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    env = {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET, "JOB_LEASE_S": LEASE_S}
    settings = make_settings(stack_env, **isolated_kafka, JOB_LEASE_S=LEASE_S)
    dsn = settings.database.dsn
    source = f"takeover-{unique}"
    total = 2000
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
    # A one-shot job of a dead owner too: the sweep fails it (the operator asks again).
    database = Database(settings.database)
    await database.start()
    try:
        orphan = await Jobs(database, owner=f"dead-{unique}", lease_s=1).create("verify", {"source": source})
    finally:
        await database.close()

    proc = subprocess.Popen([sys.executable, "-m", "exchange.cli", "replay", "--source", source, "--read-raw"],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async def some_checkpoint() -> bool:
            done = await fetchval(dsn, "SELECT (c.checkpoint->>'done')::int FROM job_runs j JOIN job_checkpoints c "
                                       "ON c.job_run_id = j.job_run_id WHERE j.params->>'source' = $1 "
                                       "AND j.job_name = 'replay'", source)
            return bool(done and done > 0)

        await eventually(some_checkpoint, timeout=60, interval=0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    job = (await fetch(dsn, "SELECT job_run_id::text AS id, status, owner FROM job_runs "
                            "WHERE params->>'source' = $1 AND job_name = 'replay'", source))[0]
    assert job["status"] == "running"  # killed: no outcome, and nobody renews its lease now
    emitted = await fetchval(dsn, "SELECT count(*) FROM outbox_events WHERE payload->>'source' = $1", source)
    assert 0 < emitted < total, "the kill should land mid-replay"

    async with running_app(settings, frozenset({Role.ADMIN})) as client:
        async def finished() -> bool:
            status = await fetchval(dsn, "SELECT status FROM job_runs WHERE job_run_id = $1::uuid", job["id"])
            return bool(status == "succeeded")

        await eventually(finished, timeout=120, interval=0.2)
        health = (await client.get("/healthz")).json()
        assert health["tasks"]["job-sweeper"]["state"] == "running"
    row = (await fetch(dsn, "SELECT owner, claims FROM job_runs WHERE job_run_id = $1::uuid", job["id"]))[0]
    assert row["owner"] != job["owner"] and row["claims"] == 2
    keys = [r["key"] for r in await fetch(dsn, "SELECT key FROM outbox_events WHERE payload->>'source' = $1", source)]
    assert len(keys) == total and sorted(keys) == ids  # none emitted twice, none skipped
    one_shot = (await fetch(dsn, "SELECT status, error FROM job_runs WHERE job_run_id = $1::uuid",
                            orphan.job_run_id))[0]
    assert (one_shot["status"], one_shot["error"]) == ("failed", "OwnerLost")
    audit = {(r["entity_id"], r["action"], r["status"]) for r in await fetch(
        dsn, "SELECT entity_id, action, status FROM audit_log WHERE entity_id = ANY($1::text[])",
        [job["id"], orphan.job_run_id])}
    assert {(job["id"], "job.replay.takeover", "resume"), (orphan.job_run_id, "job.verify.takeover", "fail")} <= audit
    await fetch(dsn, "DELETE FROM outbox_events WHERE payload->>'source' = $1", source)
