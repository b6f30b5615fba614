"""Outbox retry schedule: a failed row waits (``next_attempt_at``) instead of blocking the rest.

Without it, rows for a missing topic sat at the head of the id order and every claim
picked them again, so rows for healthy topics behind them never went out.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbox_events ADD COLUMN next_attempt_at timestamptz NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE outbox_events DROP COLUMN next_attempt_at")
