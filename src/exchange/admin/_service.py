"""Operations shared by the CLI and the admin HTTP API: one implementation.

Jobs (replay, verify, reconcile) are rows in ``job_runs``; the CLI runs them in the
foreground, the API in background tasks of the admin-role process. Every action writes
an ``audit_log`` row (actor, action, entity; never patient data).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Literal

from exchange.adapters.objectstore import ObjectStore
from exchange.adapters.postgres import Database
from exchange.derive import Deriver
from exchange.jobs import JobRun, Jobs
from exchange.normalize import DlqTools
from exchange.ops.audit import write_audit
from exchange.persons import KeyRotation
from exchange.replay import ReconcileOptions, Reconciler, ReplayService

__all__ = ("AdminService", "JobKind")

JobKind = Literal["replay", "verify", "reconcile", "derive", "derive-verify", "linkage-rotate"]
_log = logging.getLogger("exchange.admin")


class AdminService:
    def __init__(self, db: Database, store: ObjectStore, *, topic_v1: str, topic_v2: str,
                 rotation: KeyRotation) -> None:
        self.db = db
        self.jobs = Jobs(db)
        self.replay = ReplayService(db, store, self.jobs, topic_v1=topic_v1, topic_v2=topic_v2)
        self.reconciler = Reconciler(db, store, topic_v1=topic_v1, topic_v2=topic_v2)
        self.dlq = DlqTools(db, topic_v1=topic_v1, topic_v2=topic_v2)
        self.deriver = Deriver(db, self.jobs)
        self.rotation = rotation
        self._background: set[asyncio.Task[None]] = set()

    async def audit(self, actor: str, action: str, entity_type: str, entity_id: str | None, status: str,
                    details: dict[str, Any] | None = None, correlation_id: str | None = None) -> None:
        async with self.db.transaction() as conn:
            await write_audit(conn, actor=actor, action=action, entity_type=entity_type, entity_id=entity_id,
                              status=status, details=details, correlation_id=correlation_id)

    # -- jobs --------------------------------------------------------------------------
    async def create_job(self, kind: JobKind, params: dict[str, Any], actor: str) -> JobRun:
        job = await self.jobs.create(kind, params, status="queued")
        await self.audit(actor, f"job.{kind}.start", "job", job.job_run_id, "accepted", params)
        return job

    async def run_job(self, job: JobRun, *, on_progress: Callable[[Any], None] | None = None) -> dict[str, Any]:
        """Run (or resume) a job to its end in this task; the job row records the outcome."""
        await self.jobs.set_status(job, "running")
        try:
            result = await self._execute(job, on_progress)
        except asyncio.CancelledError:
            raise  # interrupted: stays "running", resumable from its checkpoint
        except Exception as exc:
            with contextlib.suppress(Exception):
                await self.jobs.finish(job, status="failed", error=type(exc).__name__)
            raise
        await self.jobs.finish(job, status="succeeded", result=result)
        return result

    async def _execute(self, job: JobRun, on_progress: Callable[[Any], None] | None) -> dict[str, Any]:
        if job.job_name == "linkage-rotate":
            return await self.rotation.run(job, batch_size=int(job.params.get("batch_size", 500)),
                                           retire=bool(job.params.get("retire", True)), on_progress=on_progress)
        if job.job_name == "derive":
            return await self.deriver.run(job, on_progress=on_progress)
        if job.job_name == "derive-verify":
            return await self.deriver.verify(str(job.params["dataset"]))
        if job.job_name == "replay":
            return await self.replay.run(job, on_progress=on_progress)
        if job.job_name == "verify":
            return await self.replay.verify(str(job.params["source"]))
        if job.job_name == "reconcile":
            return await self.reconciler.run(ReconcileOptions.from_dict(job.params))
        raise ValueError(f"unknown job {job.job_name}")

    def start_in_background(self, job: JobRun) -> None:
        async def runner() -> None:
            try:
                await self.run_job(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - recorded on the job row; the API polls it
                _log.warning("job failed", extra={"job_id": job.job_run_id, "error_type": type(exc).__name__})

        task = asyncio.create_task(runner(), name=f"job:{job.job_run_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(self._background, timeout=2)

    # -- DLQ ---------------------------------------------------------------------------
    async def dlq_reprocess(self, entry_id: int, actor: str) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            result = await self.dlq.reprocess(conn, entry_id)
            await write_audit(conn, actor=actor, action="dlq.reprocess", entity_type="dlq_event",
                              entity_id=str(entry_id), status="ok", details={"record_id": result["record_id"]})
        return result

    async def dlq_resolve(self, entry_id: int, actor: str, reason: str) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            result = await self.dlq.resolve(conn, entry_id, actor=actor, reason=reason)
            await write_audit(conn, actor=actor, action="dlq.resolve", entity_type="dlq_event",
                              entity_id=str(entry_id), status="ok", details={"reason": reason})
        return result
