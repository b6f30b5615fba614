"""`exchange derive patient-index`: rebuilt from canonical rows, checkpointed, idempotent, verified."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from exchange.admin import AdminService
from exchange.bootstrap import admin_tools
from exchange.derive import DeriveProgress
from exchange.settings import Settings
from tests.support.db import fetch, fetchval

pytestmark = pytest.mark.timeout(180)

_CANONICAL = """
INSERT INTO canonical_records (record_id, source, raw_object_key, raw_sha256, normalized, ingested_at, correlation_id,
                               event_version, record_kind, schema_hint, token_key_id)
SELECT r, $2, $2 || '/' || r || '.json', repeat('a', 64), jsonb_build_object('patient_token', 'tok-' || r),
       now(), 'cid', '2', 'claim', 'partnerA.v1', 'k1'
FROM unnest($1::uuid[]) AS r
"""


async def _canonical(dsn: str, source: str, n: int) -> list[str]:
    ids = sorted(str(uuid.uuid4()) for _ in range(n))
    await fetch(dsn, _CANONICAL, ids, source)
    return ids


async def _run(admin: AdminService, params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    job = await admin.create_job("derive", {"dataset": "patient-index", **params}, "test")
    return await admin.run_job(job, **kwargs)


async def _verify(admin: AdminService) -> dict[str, Any]:
    return await admin.run_job(await admin.create_job("derive-verify", {"dataset": "patient-index"}, "test"))


async def test_a_rebuild_repairs_missing_differing_and_extra_rows_and_a_second_changes_nothing(
    app_settings: Settings, unique: str
) -> None:
    dsn = app_settings.database.dsn
    async with admin_tools(app_settings) as admin:
        await _run(admin, {"batch_size": 500})  # whatever other tests left: a clean start
        missing = await _canonical(dsn, f"derive-{unique}", 3)
        differing = await _canonical(dsn, f"derive-{unique}", 3)
        kept = await _canonical(dsn, f"derive-{unique}", 3)
        rows = [*differing, *kept]
        await fetch(dsn, """
            INSERT INTO derived_patient_record_index
                (patient_token, record_id, source, event_version, record_kind, schema_hint, ingested_at, normalized_at)
            SELECT c.normalized->>'patient_token', c.record_id, c.source, c.event_version, c.record_kind,
                   c.schema_hint, c.ingested_at, c.normalized_at
            FROM canonical_records c WHERE c.record_id = ANY($1::uuid[])""", rows)
        await fetch(dsn, "UPDATE derived_patient_record_index SET patient_token = 'stale' "
                         "WHERE record_id = ANY($1::uuid[])", differing)
        extra = str(uuid.uuid4())
        await fetch(dsn, """INSERT INTO derived_patient_record_index (patient_token, record_id, source, event_version,
                            ingested_at, normalized_at) VALUES ('gone', $1, 's', '1', now(), now())""", extra)

        report = await _verify(admin)
        assert not report["agrees"]
        assert set(missing) <= set(report["missing"])
        assert set(differing) <= set(report["differing"])
        assert extra in report["extra"]

        dry = await _run(admin, {"dry_run": True, "batch_size": 2})
        assert dry["changed"] == len(missing) + len(differing) + 1
        assert (await _verify(admin))["agrees"] is False  # a dry run writes nothing

        done = await _run(admin, {"batch_size": 2})
        assert done["changed"] == len(missing) + len(differing) + 1
        assert (await _verify(admin))["agrees"] is True
        tokens = await fetch(dsn, "SELECT patient_token FROM derived_patient_record_index "
                                  "WHERE record_id = ANY($1::uuid[])", differing)
        assert {r["patient_token"] for r in tokens} == {f"tok-{r}" for r in differing}

        again = await _run(admin, {"batch_size": 2})
        assert again["changed"] == 0  # idempotent
        assert again["scanned"] == done["scanned"]


async def test_a_run_stopped_after_its_first_batch_resumes_from_its_checkpoint(
    app_settings: Settings, unique: str
) -> None:
    dsn = app_settings.database.dsn
    async with admin_tools(app_settings) as admin:
        await _run(admin, {})
        ids = await _canonical(dsn, f"derive-resume-{unique}", 7)  # no index rows yet
        job = await admin.create_job("derive", {"dataset": "patient-index", "batch_size": 3}, "test")
        batches = 0

        def stop_after_first(progress: DeriveProgress) -> None:
            nonlocal batches
            batches += 1
            raise asyncio.CancelledError  # as a kill would: after the batch and its checkpoint committed

        with pytest.raises(asyncio.CancelledError):
            await admin.run_job(job, on_progress=stop_after_first)
        first = await admin.jobs.load_checkpoint(job)
        assert first is not None and first["scanned"] == 3
        resumed = await admin.run_job(job)  # the same job: continues after the checkpoint
        total = await fetchval(dsn, "SELECT count(*) FROM canonical_records")
        assert resumed["scanned"] == total  # every row once, none twice
        assert resumed["changed"] == len(ids)
        assert (await _verify(admin))["agrees"] is True
        status = await fetchval(dsn, "SELECT status FROM job_runs WHERE job_run_id = $1", uuid.UUID(job.job_run_id))
        assert status == "succeeded"


def test_the_cli_verify_exits_1_with_a_report_and_0_once_rebuilt(
    app_settings: Settings, stack_env: dict[str, str], unique: str
) -> None:
    env = {**os.environ, **stack_env}
    cli = [sys.executable, "-m", "exchange.cli", "derive", "patient-index"]
    subprocess.run(cli, env=env, check=True, capture_output=True, timeout=120)
    stray = str(uuid.uuid4())
    asyncio.run(fetch(app_settings.database.dsn, """
        INSERT INTO derived_patient_record_index (patient_token, record_id, source, event_version, ingested_at,
            normalized_at) VALUES ('gone', $1, $2, '1', $3, $3)""", stray, f"cli-{unique}",
        dt.datetime.now(dt.UTC)))
    failing = subprocess.run([*cli, "--verify"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert failing.returncode == 1
    report = json.loads(failing.stdout)
    assert report["extra_count"] >= 1 and stray in report["extra"]
    rebuilt = subprocess.run([*cli, "--batch-size", "250"], env=env, capture_output=True, text=True, timeout=120,
                             check=True)
    assert json.loads(rebuilt.stdout)["changed"] >= 1
    passing = subprocess.run([*cli, "--verify"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert passing.returncode == 0, passing.stdout
    audit = asyncio.run(fetchval(app_settings.database.dsn,
                                 "SELECT count(*) FROM audit_log WHERE action = 'job.derive.start'"))
    assert audit >= 2


async def test_the_admin_api_starts_a_derive_job(app_settings: Settings) -> None:
    from exchange.roles import Role
    from tests.support.app import DEV, running_app

    async with running_app(app_settings, frozenset({Role.ADMIN})) as client:
        answer = await client.post("/admin/jobs/derive", json={"dataset": "patient-index", "verify": True},
                                   headers=DEV)
        assert answer.status_code == 202
        job_url = answer.headers["location"]
        for _ in range(100):
            job = (await client.get(job_url, headers=DEV)).json()
            if job["status"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.1)
        assert job["status"] == "succeeded"
        assert "agrees" in job["result"]
        bad = await client.post("/admin/jobs/derive", json={"dataset": "nope"}, headers=DEV)
        assert bad.status_code == 400
