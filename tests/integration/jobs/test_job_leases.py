"""Job leases on the real database: one owner at a time, tested by trying to run a job twice."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exchange.adapters.postgres import Database
from exchange.bootstrap import admin_tools
from exchange.jobs import JobBusy, JobFinished, Jobs, LeaseLost
from exchange.ops_cli import EXIT_BUSY
from exchange.settings import Settings
from tests.support.app import TEST_JWT_SECRET, make_settings
from tests.support.db import fetch, fetchval

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def second_db(app_settings: Settings) -> AsyncIterator[Database]:
    """Another pool on the same database: a second process's connections."""
    database = Database(app_settings.database)
    await database.start()
    try:
        yield database
    finally:
        await database.close()


async def _expire(dsn: str, job_id: str) -> None:
    """The owner stopped renewing: its lease is in the past (as after a kill, without the wait)."""
    await fetch(dsn, "UPDATE job_runs SET lease_expires_at = now() - interval '1 second' WHERE job_run_id = $1::uuid",
                job_id)


async def test_of_two_concurrent_claimers_of_a_stale_job_exactly_one_wins(
    app_settings: Settings, db: Database, second_db: Database, unique: str
) -> None:
    dead, first, second = Jobs(db, owner=f"dead-{unique}"), Jobs(db, owner=f"a-{unique}"), Jobs(second_db,
                                                                                                owner=f"b-{unique}")
    winners: list[str] = []
    for n in range(25):
        job = await dead.create("verify", {"source": f"lease-{unique}-{n}"})
        await _expire(app_settings.database.dsn, job.job_run_id)
        outcomes = await asyncio.gather(first.claim(job.job_run_id), second.claim(job.job_run_id),
                                        return_exceptions=True)
        won = [o for o in outcomes if not isinstance(o, BaseException)]
        lost = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(won) == 1, outcomes
        assert len(lost) == 1 and isinstance(lost[0], JobBusy), outcomes
        owner = won[0].owner
        assert owner is not None
        winners.append(owner)
        row = (await fetch(app_settings.database.dsn, "SELECT owner, claims, status FROM job_runs "
                                                      "WHERE job_run_id = $1::uuid", job.job_run_id))[0]
        assert (row["owner"], row["claims"], row["status"]) == (owner, 2, "running")
        # The loser cannot write the outcome either.
        loser = second if owner == first.owner else first
        with pytest.raises(LeaseLost):
            await loser.finish(won[0], status="succeeded", result={})
        await (first if owner == first.owner else second).finish(won[0], status="succeeded", result={})
    assert set(winners) <= {first.owner, second.owner}


async def test_a_job_under_a_live_lease_is_refused_and_one_with_an_outcome_is_not_claimable(
    db: Database, second_db: Database, unique: str
) -> None:
    holder, other = Jobs(db, owner=f"holder-{unique}", lease_s=1), Jobs(second_db, owner=f"other-{unique}")
    job = await holder.create("verify", {"source": f"lease-{unique}"})
    async with holder.held(job.job_run_id) as (owned, lost):
        with pytest.raises(JobBusy) as busy:
            await other.claim(job.job_run_id)
        assert busy.value.owner == holder.owner
        with pytest.raises(JobBusy):
            await holder.claim(job.job_run_id)  # the holder itself does not run it twice
        await asyncio.sleep(2.5)  # more than two leases: only the heartbeat keeps it ours
        with pytest.raises(JobBusy):
            await other.claim_waiting(job.job_run_id, 0.5)
        assert not lost.is_set()
        await holder.finish(owned, status="succeeded", result={"ok": True})
    with pytest.raises(JobFinished):
        await other.claim(job.job_run_id)


async def test_an_owner_that_lost_its_lease_cannot_commit_a_checkpoint_or_an_outcome(
    app_settings: Settings, db: Database, second_db: Database, unique: str
) -> None:
    slow, fast = Jobs(db, owner=f"slow-{unique}", lease_s=1), Jobs(second_db, owner=f"fast-{unique}")
    dsn = app_settings.database.dsn
    job = await slow.create("replay", {"source": f"fence-{unique}"})
    async with slow.held(job.job_run_id) as (owned, lost):
        await _expire(dsn, job.job_run_id)  # as if the slow owner had paused past its lease
        taken = await fast.claim(job.job_run_id)
        async with db.transaction() as conn:
            with pytest.raises(LeaseLost):
                await Jobs.save_checkpoint(conn, owned, {"done": 99})
        assert await fetchval(dsn, "SELECT count(*) FROM job_checkpoints WHERE job_run_id = $1::uuid",
                              job.job_run_id) == 0
        await asyncio.wait_for(lost.wait(), timeout=5)  # its heartbeat finds the lease gone
        with pytest.raises(LeaseLost):
            await slow.finish(owned, status="succeeded", result={})
        async with second_db.transaction() as conn:
            await Jobs.save_checkpoint(conn, taken, {"done": 1})  # the new owner's writes go through
        await fast.finish(taken, status="succeeded", result={"by": "fast"})
    row = (await fetch(dsn, "SELECT owner, status, result FROM job_runs WHERE job_run_id = $1::uuid",
                       job.job_run_id))[0]
    assert (row["owner"], row["status"], row["result"]) == (fast.owner, "succeeded", {"by": "fast"})


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exchange.cli", *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_cli_resume_while_the_api_process_holds_the_lease_is_refused_then_runs_once_released(
    stack_env: dict[str, str], unique: str
) -> None:
    env = {**stack_env, "JWT_SECRET": TEST_JWT_SECRET, "JOB_LEASE_S": "1"}
    settings = make_settings(stack_env, JOB_LEASE_S="1")
    dsn = settings.database.dsn
    async with admin_tools(settings) as api:  # the admin API's service, in this process
        job = await api.create_job("replay", {"source": f"held-{unique}", "limit": None, "emit_version": "auto",
                                              "dry_run": False, "read_raw": False}, "ops-api")
        async with api.jobs.held(job.job_run_id) as (_owned, lost):
            code, _out, err = await _cli(env, "replay", "--resume", job.job_run_id)
            assert code == EXIT_BUSY, err
            assert "running elsewhere" in err and api.jobs.owner in err
            assert not lost.is_set()
            row = (await fetch(dsn, "SELECT owner, claims, status FROM job_runs WHERE job_run_id = $1::uuid",
                               job.job_run_id))[0]
            assert (row["owner"], row["claims"], row["status"]) == (api.jobs.owner, 1, "running")
    # Released (the API's run ended without an outcome): the resume claims it and runs it, once.
    code, out, err = await _cli(env, "replay", "--resume", job.job_run_id)
    assert code == 0, err
    row = (await fetch(dsn, "SELECT owner, claims, status FROM job_runs WHERE job_run_id = $1::uuid",
                       job.job_run_id))[0]
    assert row["status"] == "succeeded" and row["claims"] == 2 and row["owner"] != api.jobs.owner
    assert '"job_id"' in out


async def test_the_api_and_a_cli_resume_racing_for_one_job_run_it_once(
    stack_env: dict[str, str], unique: str
) -> None:
    """Many rounds of the real race: the API's background run and a resume claiming together."""
    settings = make_settings(stack_env, JOB_LEASE_S="2")
    async with admin_tools(settings) as api, admin_tools(settings) as cli:
        runs: list[Any] = []
        for n in range(15):
            job = await api.create_job("verify", {"source": f"race-{unique}-{n}"}, "ops-api")
            await _expire(settings.database.dsn, job.job_run_id)
            outcomes = await asyncio.gather(api.run_job(job), cli.run_job(job), return_exceptions=True)
            ran = [o for o in outcomes if isinstance(o, dict)]
            refused = [o for o in outcomes if isinstance(o, (JobBusy, JobFinished))]
            assert (len(ran), len(refused)) == (1, 1), outcomes
            runs.append(ran[0])
        started = await fetchval(settings.database.dsn, "SELECT count(*) FROM job_runs WHERE params->>'source' "
                                                        "LIKE $1 AND status = 'succeeded'", f"race-{unique}-%")
        assert started == 15
    assert all(r["raw_count"] == 0 for r in runs)
