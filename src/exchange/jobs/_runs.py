"""Batch jobs (`job_runs`) and their resumable checkpoints (`job_checkpoints`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from exchange.adapters.postgres import Connection, Database

__all__ = ("JobRun", "Jobs")


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
