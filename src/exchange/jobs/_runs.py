"""Batch jobs (`job_runs`) and their resumable checkpoints (`job_checkpoints`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from exchange.adapters.postgres import Connection, Database

__all__ = ("JobRun", "JobSummary", "Jobs")


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_run_id, "job_name": self.job_name, "status": self.status, "params": self.params,
            "progress": self.progress, "result": self.result, "error": self.error,
            "started_at": self.started_at, "ended_at": self.ended_at,
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


_CREATE = """
INSERT INTO job_runs (job_run_id, job_name, status, params) VALUES ($1, $2, $3, $4::jsonb)
"""
_GET = """
SELECT job_run_id::text, job_name, status, params, progress, result, error,
       to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS started_at,
       to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ended_at
FROM job_runs WHERE job_run_id = $1
"""
_PROGRESS = "UPDATE job_runs SET progress = $2::jsonb, updated_at = now() WHERE job_run_id = $1"
_STATUS = "UPDATE job_runs SET status = $2, updated_at = now() WHERE job_run_id = $1"
_FINISH = """
UPDATE job_runs SET status = $2, result = $3::jsonb, error = $4, ended_at = now(), updated_at = now()
WHERE job_run_id = $1
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
_SAVE_CHECKPOINT = """
INSERT INTO job_checkpoints (job_name, job_run_id, checkpoint, updated_at) VALUES ($1, $2, $3::jsonb, now())
ON CONFLICT (job_name) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, updated_at = now()
"""
_LOAD_CHECKPOINT = "SELECT checkpoint FROM job_checkpoints WHERE job_name = $1"


def checkpoint_name(job: JobRun) -> str:
    return f"{job.job_name}:{job.job_run_id}"


class Jobs:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, job_name: str, params: dict[str, Any], *, status: str = "running") -> JobRun:
        job_id = str(uuid.uuid4())
        async with self._db.transaction() as conn:
            await conn.execute(_CREATE, uuid.UUID(job_id), job_name, status, params)
        job = await self.get(job_id)
        assert job is not None
        return job

    async def get(self, job_id: str) -> JobRun | None:
        try:
            key = uuid.UUID(job_id)
        except ValueError:
            return None
        async with self._db.connection() as conn:
            row = await conn.fetchrow(_GET, key)
        if row is None:
            return None
        return JobRun(
            job_run_id=row["job_run_id"], job_name=row["job_name"], status=row["status"],
            params=dict(row["params"] or {}), progress=dict(row["progress"] or {}),
            result=dict(row["result"]) if row["result"] is not None else None, error=row["error"],
            started_at=row["started_at"], ended_at=row["ended_at"],
        )

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

    async def set_status(self, job: JobRun, status: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(_STATUS, uuid.UUID(job.job_run_id), status)

    async def progress(self, job: JobRun, progress: dict[str, Any]) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(_PROGRESS, uuid.UUID(job.job_run_id), progress)

    async def finish(self, job: JobRun, *, status: str, result: dict[str, Any] | None = None,
                     error: str | None = None) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(_FINISH, uuid.UUID(job.job_run_id), status, result, error)

    @staticmethod
    async def save_checkpoint(conn: Connection, job: JobRun, checkpoint: dict[str, Any]) -> None:
        """In the caller's transaction, so the checkpoint commits with the work it describes."""
        await conn.execute(_SAVE_CHECKPOINT, checkpoint_name(job), uuid.UUID(job.job_run_id), checkpoint)
        await conn.execute(_PROGRESS, uuid.UUID(job.job_run_id), checkpoint)

    async def load_checkpoint(self, job: JobRun) -> dict[str, Any] | None:
        async with self._db.connection() as conn:
            value = await conn.fetchval(_LOAD_CHECKPOINT, checkpoint_name(job))
        return dict(value) if value is not None else None
