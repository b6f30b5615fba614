"""Jobs context: every operator job's run (``job_runs``) and resumable checkpoint
(``job_checkpoints``), shared by replay, reconcile, derive and the linkage key rotation."""

from __future__ import annotations

from exchange.jobs._runs import JobBusy, JobFinished, JobRun, Jobs, LeaseLost, checkpoint_name, owner_name

__all__ = ("JobBusy", "JobFinished", "JobRun", "Jobs", "LeaseLost", "checkpoint_name", "owner_name")
