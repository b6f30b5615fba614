"""Job leases: a job run has one owner at a time, proven by a lease it renews (a heartbeat).

``owner``: the process running the job (host, pid and a per-process nonce). ``lease_expires_at``:
until when that owner may run it; the owner renews it every third of the lease, and every write
the job makes (checkpoint, progress, outcome) is conditional on still being the owner, so a
process that lost its lease (paused, partitioned, presumed dead) cannot commit past the one that
took the job over. A job whose lease has expired is stale: the admin role resumes it from its
checkpoint or fails it. ``claims``: how many times the job was claimed (1 for a job never taken
over). The partial index serves the sweep for stale jobs, which reads only unfinished ones.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE job_runs
            ADD COLUMN owner            text        NULL,
            ADD COLUMN lease_expires_at timestamptz NULL,
            ADD COLUMN heartbeat_at     timestamptz NULL,
            ADD COLUMN claims           integer     NOT NULL DEFAULT 0
    """)
    op.execute("""
        CREATE INDEX ix_job_runs_unfinished_lease ON job_runs (lease_expires_at)
        WHERE status IN ('queued', 'running')
    """)


def downgrade() -> None:
    op.execute("DROP INDEX ix_job_runs_unfinished_lease")
    op.execute("""
        ALTER TABLE job_runs DROP COLUMN claims, DROP COLUMN heartbeat_at, DROP COLUMN lease_expires_at,
            DROP COLUMN owner
    """)
