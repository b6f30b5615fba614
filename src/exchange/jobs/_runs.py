"""Batch jobs (`job_runs`) with an owner lease, and their resumable checkpoints (`job_checkpoints`).

One job runs in one place at a time. An owner (one ``Jobs`` instance: a CLI command or an admin
process) claims a job row with ``FOR UPDATE SKIP LOCKED`` and a lease until ``lease_expires_at``;
while it runs, a heartbeat renews the lease every third of its length. A second claimer finds the
row locked or leased and is refused (``JobBusy``). Every write the job makes — each checkpoint
(in the batch's own transaction), its outcome — is conditional on still being the owner, so an
owner that lost its lease (paused past it, partitioned, presumed dead and taken over) cannot
commit anything after the new owner claimed it: its write raises ``LeaseLost`` and rolls back.
A job whose lease expired is stale; ``stale`` lists them for the admin role's sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from exchange.adapters.postgres import Connection, Database

__all__ = ("JobBusy", "JobFinished", "JobRun", "JobSummary", "Jobs", "LeaseLost", "checkpoint_name", "owner_name")

_log = logging.getLogger("exchange.jobs")


def owner_name() -> str:
    """A lease owner's name: host and pid say where it runs, the nonce tells apart two owners of one
    process (and a restarted process that reused a pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobBusy(Exception):
    """Another owner holds the job's lease (or is claiming it right now)."""

    def __init__(self, job_id: str, owner: str | None, lease_expires_at: str | None) -> None:
        super().__init__(f"job {job_id} is running elsewhere (owner {owner}, lease until {lease_expires_at})")
        self.owner = owner
        self.lease_expires_at = lease_expires_at


class JobFinished(Exception):
    """The job has an outcome already (succeeded, failed or cancelled): nothing to claim."""

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"job {job_id} is {status}")
        self.status = status


class LeaseLost(Exception):
    """This owner's lease was taken over: it must stop and write nothing more."""


@dataclass(frozen=True, slots=True)
class JobRun:
    job_run_id: str
    job_name: str
    status: str
    params: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    started_at: str
    ended_at: str | None
    owner: str | None = None
    lease_expires_at: str | None = None
    claims: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_run_id, "job_name": self.job_name, "status": self.status, "params": self.params,
            "progress": self.progress, "result": self.result, "error": self.error,
            "started_at": self.started_at, "ended_at": self.ended_at,
            "owner": self.owner, "lease_expires_at": self.lease_expires_at, "claims": self.claims,
        }


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One job kind's runs at a glance (for metrics: no job ids)."""

    job_name: str
    runs_by_status: dict[str, int]
    """Runs queued or running, and runs ended in the last 24 hours, by status."""
    processed_items: int
    """Items the running runs have processed (their progress' ``done``, else ``scanned``)."""
    expected_items: int
    """Items the running runs expect in all, where their progress knows (``total``)."""
    progress_age_s: float
    """Seconds since the least recently updated running run last recorded progress; 0 with none running.
    A run killed without finishing stays ``running`` and this keeps growing."""


_TS = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_COLUMNS = f"""
job_run_id::text, job_name, status, params, progress, result, error, owner, claims,
{_TS.format("started_at")} AS started_at, {_TS.format("ended_at")} AS ended_at,
{_TS.format("lease_expires_at")} AS lease_expires_at
"""
_CREATE = """
INSERT INTO job_runs (job_run_id, job_name, status, params, owner, lease_expires_at, heartbeat_at, claims)
VALUES ($1, $2, $3, $4::jsonb, $5, now() + make_interval(secs => $6), now(), 1)
"""
_GET = f"SELECT {_COLUMNS} FROM job_runs WHERE job_run_id = $1"
# The claim: the row must be unfinished and either ours or out of lease; a row another claimer
# has locked right now is skipped, not waited for (its claim wins, ours is refused).
_CLAIM = f"""
WITH claimable AS (
    SELECT job_run_id FROM job_runs
    WHERE job_run_id = $1 AND status IN ('queued', 'running')
      AND (owner IS NULL OR owner = $2 OR lease_expires_at IS NULL OR lease_expires_at <= now())
    FOR UPDATE SKIP LOCKED
)
UPDATE job_runs j
SET owner = $2, status = 'running', lease_expires_at = now() + make_interval(secs => $3), heartbeat_at = now(),
    claims = j.claims + CASE WHEN j.owner IS NOT DISTINCT FROM $2 THEN 0 ELSE 1 END, updated_at = now()
FROM claimable c WHERE j.job_run_id = c.job_run_id
RETURNING {_COLUMNS.replace("job_run_id::text", "j.job_run_id::text")}
"""
_RENEW = """
UPDATE job_runs SET lease_expires_at = now() + make_interval(secs => $3), heartbeat_at = now()
WHERE job_run_id = $1 AND owner = $2 AND status = 'running'
"""
_RELEASE = """
UPDATE job_runs SET lease_expires_at = now(), updated_at = now()
WHERE job_run_id = $1 AND owner = $2 AND status IN ('queued', 'running')
"""
_STALE = """
SELECT job_run_id::text FROM job_runs
WHERE status IN ('queued', 'running') AND (lease_expires_at IS NULL OR lease_expires_at <= now())
ORDER BY lease_expires_at NULLS FIRST LIMIT $1
"""
_PROGRESS = """
UPDATE job_runs SET progress = $3::jsonb, updated_at = now()
WHERE job_run_id = $1 AND owner = $2 AND status = 'running'
"""
_FINISH = """
UPDATE job_runs SET status = $3, result = $4::jsonb, error = $5, ended_at = now(), updated_at = now(),
                    lease_expires_at = NULL
WHERE job_run_id = $1 AND owner = $2 AND status IN ('queued', 'running')
"""
# A progress count, when the run's progress holds a number under that key (else NULL).
def _count(key: str) -> str:
    return f"CASE WHEN jsonb_typeof(progress->'{key}') = 'number' THEN (progress->>'{key}')::numeric END"


# job_runs holds a row per operator job run: small enough to read whole at a scrape.
_SUMMARY = f"""
SELECT job_name, status, count(*) AS runs,
       coalesce(sum(coalesce({_count('done')}, {_count('scanned')})) FILTER (WHERE status = 'running'), 0)
           AS processed,
       coalesce(sum({_count('total')}) FILTER (WHERE status = 'running'), 0) AS expected,
       coalesce(max(extract(epoch FROM now() - updated_at)) FILTER (WHERE status = 'running'), 0) AS age_s
FROM job_runs
WHERE status IN ('queued', 'running') OR ended_at >= now() - interval '24 hours'
GROUP BY job_name, status
LIMIT 200
"""
# Newest first; $2 (a job id) pages on from that job. job_runs holds a row per operator job run.
_RECENT = f"""
SELECT {_COLUMNS} FROM job_runs
WHERE ($2::uuid IS NULL OR (job_runs.started_at, job_runs.job_run_id)
                           < (SELECT started_at, job_run_id FROM job_runs WHERE job_run_id = $2))
ORDER BY job_runs.started_at DESC, job_runs.job_run_id DESC LIMIT $1
"""
_SAVE_CHECKPOINT = """
INSERT INTO job_checkpoints (job_name, job_run_id, checkpoint, updated_at) VALUES ($1, $2, $3::jsonb, now())
ON CONFLICT (job_name) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, updated_at = now()
"""
_LOAD_CHECKPOINT = "SELECT checkpoint FROM job_checkpoints WHERE job_name = $1"


def checkpoint_name(job: JobRun) -> str:
    return f"{job.job_name}:{job.job_run_id}"


def _job(row: Any) -> JobRun:
    return JobRun(
        job_run_id=row["job_run_id"], job_name=row["job_name"], status=row["status"],
        params=dict(row["params"] or {}), progress=dict(row["progress"] or {}),
        result=dict(row["result"]) if row["result"] is not None else None, error=row["error"],
        started_at=row["started_at"], ended_at=row["ended_at"], owner=row["owner"],
        lease_expires_at=row["lease_expires_at"], claims=row["claims"],
    )


def _updated(status: str) -> bool:
    return status.rsplit(" ", 1)[-1] != "0"


class Jobs:
    """The job rows of one lease owner (``owner``), with leases of ``lease_s`` seconds."""

    def __init__(self, db: Database, *, owner: str | None = None, lease_s: float = 30.0) -> None:
        self._db = db
        self.owner = owner or owner_name()
        self.lease_s = lease_s
        self._held: set[str] = set()  # jobs this owner runs now: one owner, one run of a job

    async def create(self, job_name: str, params: dict[str, Any], *, status: str = "queued") -> JobRun:
        """A new job, its lease held by this owner from the start (so no sweep takes it before it runs)."""
        job_id = uuid.uuid4()
        async with self._db.transaction() as conn:
            await conn.execute(_CREATE, job_id, job_name, status, params, self.owner, self.lease_s)
        job = await self.get(str(job_id))
        assert job is not None
        return job

    async def get(self, job_id: str) -> JobRun | None:
        try:
            key = uuid.UUID(job_id)
        except ValueError:
            return None
        async with self._db.connection() as conn:
            row = await conn.fetchrow(_GET, key)
        return None if row is None else _job(row)

    async def recent(self, limit: int, *, before: str | None = None) -> list[JobRun]:
        """Runs newest first, at most ``limit``; ``before`` (a job id) pages on after that run."""
        key = None
        if before is not None:
            try:
                key = uuid.UUID(before)
            except ValueError:
                return []
        async with self._db.connection() as conn:
            rows = await conn.fetch(_RECENT, limit, key)
        return [_job(r) for r in rows]

    async def summary(self) -> list[JobSummary]:
        """Every job kind with a run queued, running or ended in the last 24 hours."""
        async with self._db.connection() as conn:
            rows = await conn.fetch(_SUMMARY)
        kinds: dict[str, dict[str, Any]] = {}
        for r in rows:
            kind = kinds.setdefault(r["job_name"], {"runs": {}, "processed": 0, "expected": 0, "age": 0.0})
            kind["runs"][r["status"]] = int(r["runs"])
            kind["processed"] += int(r["processed"])
            kind["expected"] += int(r["expected"])
            kind["age"] = max(kind["age"], float(r["age_s"]))
        return [JobSummary(name, k["runs"], k["processed"], k["expected"], round(k["age"], 3))
                for name, k in sorted(kinds.items())]

    async def claim(self, job_id: str) -> JobRun:
        """The job, now ``running`` under this owner's lease; ``JobBusy`` when another owner holds
        it (or this owner runs it already), ``JobFinished`` when it has an outcome, ``LookupError``
        when there is no such job."""
        if job_id in self._held:
            raise JobBusy(job_id, self.owner, None)
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(_CLAIM, uuid.UUID(job_id), self.owner, self.lease_s)
        if row is not None:
            return _job(row)
        current = await self.get(job_id)
        if current is None:
            raise LookupError(job_id)
        if current.status not in ("queued", "running"):
            raise JobFinished(job_id, current.status)
        raise JobBusy(job_id, current.owner, current.lease_expires_at)

    async def renew(self, job: JobRun) -> None:
        """Extend this owner's lease; ``LeaseLost`` when another owner has taken the job."""
        async with self._db.transaction() as conn:
            status = await conn.execute(_RENEW, uuid.UUID(job.job_run_id), self.owner, self.lease_s)
        if not _updated(status):
            raise LeaseLost(job.job_run_id)

    async def release(self, job: JobRun) -> None:
        """Give the lease up without an outcome (interrupted): the job is claimable at once."""
        async with self._db.transaction() as conn:
            await conn.execute(_RELEASE, uuid.UUID(job.job_run_id), self.owner)

    async def stale(self, limit: int = 20) -> list[str]:
        """Unfinished jobs whose lease has expired (their owner stopped renewing it)."""
        async with self._db.connection() as conn:
            rows = await conn.fetch(_STALE, limit)
        return [r["job_run_id"] for r in rows]

    async def claim_waiting(self, job_id: str, wait_s: float) -> JobRun:
        """``claim``, trying again for up to ``wait_s`` seconds while another owner holds the job:
        a dead owner's lease runs out within one lease; a live owner's is renewed, so a wait a
        little longer than a lease tells the two apart."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return await self.claim(job_id)
            except JobBusy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                await asyncio.sleep(min(0.25, remaining))

    @contextlib.asynccontextmanager
    async def held(self, job_id: str, *, wait_s: float = 0.0) -> AsyncIterator[tuple[JobRun, asyncio.Event]]:
        """Claim the job (``claim_waiting``) and keep its lease renewed while the body runs; the
        event is set if the lease is lost meanwhile (the body must stop: its writes would raise
        ``LeaseLost``). On exit without an outcome the lease is released, so a resume need not
        wait it out."""
        job = await self.claim_waiting(job_id, wait_s)
        self._held.add(job_id)
        lost = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(job, lost), name=f"lease:{job_id}")
        try:
            yield job, lost
        finally:
            self._held.discard(job_id)
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            if not lost.is_set():
                with contextlib.suppress(Exception):  # best effort: the lease expires on its own
                    await asyncio.shield(self.release(job))

    async def _heartbeat(self, job: JobRun, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self.renew(job)
            except LeaseLost:
                _log.warning("job lease lost", extra={"job_id": job.job_run_id})
                lost.set()
                return
            except Exception as exc:  # noqa: BLE001 - e.g. the database away: keep trying
                # The lease may lapse meanwhile; the owner check on every write keeps that safe.
                _log.warning("job lease not renewed", extra={"job_id": job.job_run_id,
                                                             "error_type": type(exc).__name__})

    async def progress(self, job: JobRun, progress: dict[str, Any]) -> None:
        async with self._db.transaction() as conn:
            status = await conn.execute(_PROGRESS, uuid.UUID(job.job_run_id), self.owner, progress)
        if not _updated(status):
            raise LeaseLost(job.job_run_id)

    async def finish(self, job: JobRun, *, status: str, result: dict[str, Any] | None = None,
                     error: str | None = None) -> None:
        """The job's outcome, written only while this owner holds it (``LeaseLost`` otherwise)."""
        async with self._db.transaction() as conn:
            updated = await conn.execute(_FINISH, uuid.UUID(job.job_run_id), self.owner, status, result, error)
        if not _updated(updated):
            raise LeaseLost(job.job_run_id)

    @staticmethod
    async def save_checkpoint(conn: Connection, job: JobRun, checkpoint: dict[str, Any]) -> None:
        """In the caller's transaction, so the checkpoint commits with the work it describes; and
        only while ``job.owner`` holds the job: ``LeaseLost`` rolls that transaction back."""
        status = await conn.execute(_PROGRESS, uuid.UUID(job.job_run_id), job.owner, checkpoint)
        if not _updated(status):
            raise LeaseLost(job.job_run_id)
        await conn.execute(_SAVE_CHECKPOINT, checkpoint_name(job), uuid.UUID(job.job_run_id), checkpoint)

    async def load_checkpoint(self, job: JobRun) -> dict[str, Any] | None:
        async with self._db.connection() as conn:
            value = await conn.fetchval(_LOAD_CHECKPOINT, checkpoint_name(job))
        return dict(value) if value is not None else None
