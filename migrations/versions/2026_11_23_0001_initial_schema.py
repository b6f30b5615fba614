"""Initial schema: ingest, outbox, raw/canonical, ledger, audit, jobs, DLQ, derived.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Explicit SQL, one block per table.  asyncpg runs every statement as a prepared
statement, which cannot hold several commands, so each block is split into its
statements (on a ``;`` at the end of a line) and each one goes through its own
``op.execute``.  Keep one statement per ``;``-terminated line group and no ``;``
at a line end inside literals or comments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)


def _execute_block(sql: str) -> None:
    for statement in _STATEMENT_END.split(sql):
        if statement.strip():
            op.execute(statement.strip())


IDEMPOTENCY_KEYS = """
CREATE TABLE idempotency_keys (
    client_id       text        NOT NULL,  -- JWT sub; 'dev' for the local token
    key             text        NOT NULL,
    request_sha256  text        NOT NULL,  -- hex
    record_id       uuid        NOT NULL,
    status_code     integer     NOT NULL,
    response        jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    CONSTRAINT pk_idempotency_keys PRIMARY KEY (client_id, key)
);
CREATE INDEX ix_idempotency_keys_expires_at ON idempotency_keys (expires_at);
"""

OUTBOX_EVENTS = """
CREATE TABLE outbox_events (
    id            bigserial   NOT NULL,
    topic         text        NOT NULL,
    key           text        NOT NULL,
    payload       jsonb       NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz NULL,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text        NULL,
    CONSTRAINT pk_outbox_events PRIMARY KEY (id)
);
CREATE INDEX ix_outbox_events_pending ON outbox_events (id) WHERE published_at IS NULL;
CREATE INDEX ix_outbox_events_key ON outbox_events (key);
CREATE INDEX ix_outbox_events_published_at ON outbox_events (published_at)
    WHERE published_at IS NOT NULL;
"""

RAW_OBJECT_MANIFEST = """
CREATE TABLE raw_object_manifest (
    record_id      uuid        NOT NULL,
    source         text        NOT NULL,
    bucket         text        NOT NULL,
    object_key     text        NOT NULL,
    sha256         text        NOT NULL,
    size_bytes     bigint      NOT NULL,
    event_version  text        NOT NULL,
    state          text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_raw_object_manifest PRIMARY KEY (record_id),
    CONSTRAINT uq_raw_object_manifest_object_key UNIQUE (object_key),
    CONSTRAINT ck_raw_object_manifest_state
        CHECK (state IN ('written', 'enqueued', 'canonicalized', 'orphaned'))
);
CREATE INDEX ix_raw_object_manifest_source_record_id
    ON raw_object_manifest (source, record_id);
"""

CANONICAL_RECORDS = """
CREATE TABLE canonical_records (
    record_id       uuid        NOT NULL,
    source          text        NOT NULL,
    raw_object_key  text        NOT NULL,
    raw_sha256      text        NOT NULL,
    normalized      jsonb       NOT NULL,
    ingested_at     timestamptz NOT NULL,
    normalized_at   timestamptz NOT NULL DEFAULT now(),
    correlation_id  text        NOT NULL,
    event_version   text        NOT NULL,
    record_kind     text        NULL,
    schema_hint     text        NULL,
    token_key_id    text        NULL,
    CONSTRAINT pk_canonical_records PRIMARY KEY (record_id)
);
CREATE INDEX ix_canonical_records_source_record_id
    ON canonical_records (source, record_id);
"""

PROCESSING_STAGE_STATE = """
CREATE TABLE processing_stage_state (
    record_id           uuid        NOT NULL,
    pipeline            text        NOT NULL,
    status              text        NOT NULL,
    attempt_count       integer     NOT NULL DEFAULT 0,
    last_attempt_at     timestamptz NULL,
    last_success_at     timestamptz NULL,
    next_retry_at       timestamptz NULL,
    correlation_id      text        NULL,
    event_version       text        NULL,
    event_id            uuid        NULL,
    kafka_topic         text        NULL,
    kafka_partition     integer     NULL,
    kafka_offset        bigint      NULL,
    last_error_type     text        NULL,
    last_error_message  text        NULL,
    last_error_stage    text        NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_processing_stage_state PRIMARY KEY (record_id, pipeline),
    CONSTRAINT ck_processing_stage_state_status CHECK (status IN (
        'running', 'succeeded', 'failed_retryable', 'dlq', 'reprocessed', 'resolved'
    ))
);
CREATE INDEX ix_processing_stage_state_status_updated_at
    ON processing_stage_state (status, updated_at);
"""

PROCESSING_ATTEMPTS = """
CREATE TABLE processing_attempts (
    id               bigserial   NOT NULL,
    record_id        uuid        NOT NULL,
    pipeline         text        NOT NULL,
    attempt_no       integer     NOT NULL,
    status           text        NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz NULL,
    error_type       text        NULL,
    error_message    text        NULL,
    error_stage      text        NULL,
    transient        boolean     NULL,
    result           text        NULL,
    event_id         uuid        NULL,
    kafka_topic      text        NULL,
    kafka_partition  integer     NULL,
    kafka_offset     bigint      NULL,
    CONSTRAINT pk_processing_attempts PRIMARY KEY (id),
    CONSTRAINT ck_processing_attempts_status
        CHECK (status IN ('started', 'succeeded', 'failed', 'dlq_published'))
);
CREATE INDEX ix_processing_attempts_record_id_attempt_no
    ON processing_attempts (record_id, attempt_no);
"""

AUDIT_LOG = """
CREATE TABLE audit_log (
    id              bigserial   NOT NULL,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    correlation_id  text        NULL,
    actor           text        NOT NULL,
    action          text        NOT NULL,
    entity_type     text        NOT NULL,
    entity_id       text        NULL,
    status          text        NOT NULL,
    details         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT pk_audit_log PRIMARY KEY (id)
);
CREATE INDEX ix_audit_log_occurred_at ON audit_log (occurred_at);
CREATE INDEX ix_audit_log_entity ON audit_log (entity_type, entity_id);
"""

JOB_RUNS = """
CREATE TABLE job_runs (
    job_run_id  uuid        NOT NULL,
    job_name    text        NOT NULL,
    status      text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz NULL,
    params      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    progress    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    result      jsonb       NULL,
    error       text        NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_job_runs PRIMARY KEY (job_run_id),
    CONSTRAINT ck_job_runs_status
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled'))
);
CREATE INDEX ix_job_runs_job_name_started_at ON job_runs (job_name, started_at);
"""

# job_name is the checkpoint key, qualified by the run: 'replay:<job_run_id>'.
JOB_CHECKPOINTS = """
CREATE TABLE job_checkpoints (
    job_name    text        NOT NULL,
    job_run_id  uuid        NULL,
    checkpoint  jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_job_checkpoints PRIMARY KEY (job_name)
);
"""

DLQ_EVENTS = """
CREATE TABLE dlq_events (
    id                 bigserial   NOT NULL,
    record_id          uuid        NOT NULL,
    event_id           uuid        NULL,
    event_version      text        NOT NULL,
    dlq_topic          text        NOT NULL,
    source_topic       text        NOT NULL,
    kafka_partition    integer     NULL,
    kafka_offset       bigint      NULL,
    original_event     jsonb       NOT NULL,
    error_type         text        NOT NULL,
    error_message      text        NOT NULL,
    error_stage        text        NOT NULL,
    attempts           integer     NOT NULL,
    failed_at          timestamptz NOT NULL,
    status             text        NOT NULL DEFAULT 'open',
    resolved_at        timestamptz NULL,
    resolved_by        text        NULL,
    resolution_reason  text        NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_dlq_events PRIMARY KEY (id),
    CONSTRAINT ck_dlq_events_status
        CHECK (status IN ('open', 'reprocessed', 'resolved'))
);
CREATE INDEX ix_dlq_events_status_failed_at ON dlq_events (status, failed_at);
CREATE INDEX ix_dlq_events_record_id ON dlq_events (record_id);
"""

DERIVED_PATIENT_RECORD_INDEX = """
CREATE TABLE derived_patient_record_index (
    patient_token  text        NOT NULL,
    record_id      uuid        NOT NULL,
    source         text        NOT NULL,
    event_version  text        NOT NULL,
    record_kind    text        NULL,
    schema_hint    text        NULL,
    ingested_at    timestamptz NOT NULL,
    normalized_at  timestamptz NOT NULL,
    CONSTRAINT pk_derived_patient_record_index PRIMARY KEY (record_id)
);
CREATE INDEX ix_derived_patient_record_index_patient_token
    ON derived_patient_record_index (patient_token);
"""

# Creation order; downgrade drops in reverse.
_TABLES: tuple[tuple[str, str], ...] = (
    ("idempotency_keys", IDEMPOTENCY_KEYS),
    ("outbox_events", OUTBOX_EVENTS),
    ("raw_object_manifest", RAW_OBJECT_MANIFEST),
    ("canonical_records", CANONICAL_RECORDS),
    ("processing_stage_state", PROCESSING_STAGE_STATE),
    ("processing_attempts", PROCESSING_ATTEMPTS),
    ("audit_log", AUDIT_LOG),
    ("job_runs", JOB_RUNS),
    ("job_checkpoints", JOB_CHECKPOINTS),
    ("dlq_events", DLQ_EVENTS),
    ("derived_patient_record_index", DERIVED_PATIENT_RECORD_INDEX),
)


def upgrade() -> None:
    """Create every table with its constraints and indexes."""
    for _name, block in _TABLES:
        _execute_block(block)


def downgrade() -> None:
    """Drop every table created by upgrade() (indexes go with their tables)."""
    for name, _block in reversed(_TABLES):
        op.execute(f"DROP TABLE IF EXISTS {name}")
