"""Operations shared by the CLI and the admin HTTP API: one implementation.

Jobs (replay, verify, reconcile, derive, the key rotation) are rows in ``job_runs``; the CLI
runs them in the foreground, the API in background tasks of the admin-role process. Either runs
a job only under its lease (``exchange.jobs``), so the two can never run one job at once; the
admin role's ``JobSweeper`` takes over jobs whose owner stopped renewing the lease. Every action
writes an ``audit_log`` row (actor, action, entity; never patient data).
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
from exchange.jobs import JobBusy, JobFinished, JobRun, Jobs, LeaseLost
from exchange.normalize import DlqTools
from exchange.ops.audit import write_audit
from exchange.persons import KeyRotation
from exchange.replay import ReconcileOptions, Reconciler, ReplayService

__all__ = ("RESUMABLE", "AdminService", "JobKind")

JobKind = Literal["replay", "verify", "reconcile", "derive", "derive-verify", "linkage-rotate"]
_log = logging.getLogger("exchange.admin")

RESUMABLE: frozenset[str] = frozenset({"replay", "derive"})
"""Jobs a sweep resumes from their checkpoint: their params say everything they do. The others are
failed when stale (verify, derive-verify and reconcile report a moment: the operator asks again),
except the key rotation, which needs the operator's keys: ``exchange linkage rotate --resume``."""
_LEFT_TO_THE_OPERATOR = frozenset({"linkage-rotate"})


class AdminService:
    def __init__(self, db: Database, store: ObjectStore, *, topic_v1: str, topic_v2: str,
                 rotation: KeyRotation, jobs: Jobs) -> None:
        self.db = db
        self.jobs = jobs
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

    async def run_job(self, job: JobRun, *, on_progress: Callable[[Any], None] | None = None,
                      wait_s: float = 0.0) -> dict[str, Any]:
        """Run (or resume) a job to its end in this task, under its lease; the job row records the
        outcome. ``JobBusy`` when another owner still holds it after ``wait_s`` seconds,
        ``JobFinished`` when it has an outcome already, ``LeaseLost`` when it was taken over while
        running (then the new owner finishes it, and this one wrote nothing after losing it)."""
        async with self.jobs.held(job.job_run_id, wait_s=wait_s) as (owned, lost):
            work = asyncio.create_task(self._execute(owned, on_progress), name=f"job-work:{job.job_run_id}")
            lost_waiter = asyncio.create_task(lost.wait())
            try:
                await asyncio.wait({work, lost_waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                lost_waiter.cancel()
                if not work.done():
                    work.cancel()
                    await asyncio.wait({work})
            if lost.is_set() and (work.cancelled() or isinstance(work.exception(), LeaseLost)):
                raise LeaseLost(job.job_run_id)
            try:
                result = work.result()  # CancelledError too: interrupted, stays "running", resumable
            except (asyncio.CancelledError, LeaseLost):
                raise
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await self.jobs.finish(owned, status="failed", error=type(exc).__name__)
                raise
            await self.jobs.finish(owned, status="succeeded", result=result)
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
            except (JobBusy, JobFinished, LeaseLost) as exc:
                _log.info("job not run here", extra={"job_id": job.job_run_id, "reason": type(exc).__name__})
            except Exception as exc:  # noqa: BLE001 - recorded on the job row; the API polls it
                _log.warning("job failed", extra={"job_id": job.job_run_id, "error_type": type(exc).__name__})

        task = asyncio.create_task(runner(), name=f"job:{job.job_run_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def take_over_stale(self) -> dict[str, list[str]]:
        """Jobs whose owner stopped renewing its lease: the resumable ones resume here in the
        background, the rest are failed (``OwnerLost``); audited as taken over. Claims are
        exclusive, so several admin processes sweeping at once share the stale jobs out."""
        outcome: dict[str, list[str]] = {"resumed": [], "failed": []}
        for job_id in await self.jobs.stale():
            job = await self.jobs.get(job_id)
            if job is None or job.job_name in _LEFT_TO_THE_OPERATOR:
                continue
            if job.job_name in RESUMABLE:
                try:
                    # Ours from here (the lease keeps other sweeps off); run_job claims it again as its owner.
                    claimed = await self.jobs.claim(job_id)
                except (JobBusy, JobFinished, LookupError):
                    continue
                self.start_in_background(claimed)
                outcome["resumed"].append(job_id)
                action = "resume"
            else:
                try:
                    claimed = await self.jobs.claim(job_id)
                    await self.jobs.finish(claimed, status="failed", error="OwnerLost")
                except (JobBusy, JobFinished, LookupError, LeaseLost):
                    continue
                outcome["failed"].append(job_id)
                action = "fail"
            _log.warning("stale job taken over", extra={"job_id": job_id, "action": action,
                                                        "previous_owner": job.owner})
            await self.audit(f"admin:{self.jobs.owner}", f"job.{job.job_name}.takeover", "job", job_id,
                             action, {"previous_owner": job.owner})
        return outcome

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(self._background, timeout=2)

    # -- DLQ ---------------------------------------------------------------------------
    async def dlq_reprocess(self, entry_id: int, actor: str, *,
                            expect_status: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Re-emit the entry's event, audited; ``expect_status`` (the console's guard against a
        double submit) refuses an entry no longer in those statuses with ``DlqEntryChanged``."""
        async with self.db.transaction() as conn:
            result = await self.dlq.reprocess(conn, entry_id, expect_status=expect_status)
            await write_audit(conn, actor=actor, action="dlq.reprocess", entity_type="dlq_event",
                              entity_id=str(entry_id), status="ok", details={"record_id": result["record_id"]})
        return result

    async def dlq_resolve(self, entry_id: int, actor: str, reason: str, *,
                          expect_status: tuple[str, ...] | None = None) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            result = await self.dlq.resolve(conn, entry_id, actor=actor, reason=reason, expect_status=expect_status)
            await write_audit(conn, actor=actor, action="dlq.resolve", entity_type="dlq_event",
                              entity_id=str(entry_id), status="ok", details={"reason": reason})
        return result
