"""Jobs context: every operator job's run (``job_runs``) and resumable checkpoint
(``job_checkpoints``), shared by replay, reconcile, derive and the linkage key rotation."""

from __future__ import annotations

from exchange.jobs._runs import JobRun, Jobs, JobSummary, checkpoint_name

__all__ = ("JobRun", "JobSummary", "Jobs", "checkpoint_name")
