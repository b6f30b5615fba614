"""Manifest replay facts: what a replay needs of an object, kept when ingest writes it.

``etag`` is the store's ETag for the object ingest PUT; ``record_kind`` and ``schema_hint`` are
those of its v2 event (null for v1). A replay that lists an object with the same ETag and size
builds its event from these columns and the row's ``sha256``, ``size_bytes`` and
``event_version`` instead of GETting it (a GET per object was the replay's ceiling). Rows from
before this revision, and orphans, have no ETag: their objects are read as before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE raw_object_manifest
            ADD COLUMN etag        text NULL,
            ADD COLUMN record_kind text NULL,
            ADD COLUMN schema_hint text NULL
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE raw_object_manifest
            DROP COLUMN etag, DROP COLUMN record_kind, DROP COLUMN schema_hint
        """
    )
