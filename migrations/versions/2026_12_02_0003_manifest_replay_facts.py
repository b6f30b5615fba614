"""Manifest replay facts: what a replay needs of an object, kept when ingest writes it.

``etag`` is the store's ETag for the object ingest PUT; ``shape_version``, ``shape_kind`` and
``shape_hint`` are its shape by the rule of ``exchange.events.raw_shape``. A replay that lists
an object with the same ETag and size builds its event from these columns and the manifest's
``sha256`` instead of GETting it (a GET per object was the replay's ceiling). Rows from before
this revision, and orphans, have no ETag: their objects are read as before.

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
            ADD COLUMN etag          text NULL,
            ADD COLUMN shape_version text NULL,
            ADD COLUMN shape_kind    text NULL,
            ADD COLUMN shape_hint    text NULL
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE raw_object_manifest
            DROP COLUMN etag, DROP COLUMN shape_version, DROP COLUMN shape_kind, DROP COLUMN shape_hint
        """
    )
