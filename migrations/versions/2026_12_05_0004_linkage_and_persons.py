"""Linkage tokens and persons (ADR 0006).

``linkage_tokens``: one narrow row per (token, record), found by a hash index on the token (a
token is unique to its key id and recipe, so it alone is the lookup key; equality is the only
question asked of it, and a hash index measured cheaper to insert into and to probe than a
B-tree over random 16-byte keys). No primary key: the person step writes a record's tokens once,
in the transaction that gives it its person. ``record_linkage``:
a record's tokens under one key id (``tokens``: the 16-byte digests one after the other; the i-th
is ``recipes[i]``'s), for the reads, the rebuild and the key rotation: one row a record and key. ``record_persons``: the person each record belongs to
and the fields it has (what its tokens show; the resolution rule needs them). ``person_merges``:
an absorbed person id -> the person it was merged into, so an id once handed out keeps
answering. ``linkage_models``: the fitted Fellegi-Sunter models, the newest one in use.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_STATEMENTS: tuple[str, ...] = (
    """
    CREATE TABLE linkage_tokens (
        token      bytea NOT NULL,
        record_id  uuid  NOT NULL
    )
    """,
    """
    CREATE INDEX ix_linkage_tokens_token ON linkage_tokens USING hash (token)
    """,
    """
    CREATE TABLE record_linkage (
        record_id  uuid    NOT NULL,
        key_id     text    NOT NULL,
        recipes    text[]  NOT NULL,
        tokens     bytea   NOT NULL,
        CONSTRAINT pk_record_linkage PRIMARY KEY (record_id, key_id)
    )
    """,
    """
    CREATE INDEX ix_record_linkage_key_id ON record_linkage (key_id, record_id)
    """,
    """
    CREATE TABLE record_persons (
        record_id  uuid        NOT NULL,
        person_id  uuid        NOT NULL,
        fields     text[]      NOT NULL,
        linked_at  timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_record_persons PRIMARY KEY (record_id)
    )
    """,
    """
    CREATE INDEX ix_record_persons_person_id ON record_persons (person_id, record_id)
    """,
    """
    CREATE TABLE person_merges (
        person_id    uuid        NOT NULL,
        merged_into  uuid        NOT NULL,
        merged_at    timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_person_merges PRIMARY KEY (person_id)
    )
    """,
    """
    CREATE INDEX ix_person_merges_merged_into ON person_merges (merged_into)
    """,
    """
    CREATE TABLE linkage_models (
        model_id   bigserial   NOT NULL,
        fitted_at  timestamptz NOT NULL DEFAULT now(),
        records    bigint      NOT NULL,
        model      jsonb       NOT NULL,
        CONSTRAINT pk_linkage_models PRIMARY KEY (model_id)
    )
    """,
)


def upgrade() -> None:
    for statement in _STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table in ("linkage_models", "person_merges", "record_persons", "record_linkage", "linkage_tokens"):
        op.execute(f"DROP TABLE {table}")
