"""The query layer: who sent a record, and the indexes its pages need.

``raw_object_manifest.client_id``: the client (JWT ``sub``) that sent the record, kept with the
object. ``idempotency_keys`` holds it too, but its rows are purged after the retention window, and
``GET /v1/records/{id}/status`` must keep answering "is this record yours?" after that. Rows from
before this revision have none; the status route then falls back to an unexpired idempotency row.

The indexes serve the keyset pages (``(ingested_at, record_id) > cursor ORDER BY ingested_at,
record_id``): records of a source in a time range, records of a patient token. The patient
token's new index replaces the single-column one (same leading column, one index to maintain).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE raw_object_manifest ADD COLUMN client_id text NULL")
    op.execute("CREATE INDEX ix_canonical_records_source_ingested_at "
               "ON canonical_records (source, ingested_at, record_id)")
    op.execute("CREATE INDEX ix_derived_patient_record_index_token_ingested_at "
               "ON derived_patient_record_index (patient_token, ingested_at, record_id)")
    op.execute("DROP INDEX ix_derived_patient_record_index_patient_token")


def downgrade() -> None:
    op.execute("CREATE INDEX ix_derived_patient_record_index_patient_token "
               "ON derived_patient_record_index (patient_token)")
    op.execute("DROP INDEX ix_derived_patient_record_index_token_ingested_at")
    op.execute("DROP INDEX ix_canonical_records_source_ingested_at")
    op.execute("ALTER TABLE raw_object_manifest DROP COLUMN client_id")
