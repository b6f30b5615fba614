"""The person step's read and write as functions, so a normalizer can resolve without holding the lock.

``linkage_holders(ids, wanted, token_bytes, max_records)``: the person step's one read -- the
given records that already have a person (``tokens`` null), and the records holding any of the
wanted tokens (a concatenation of ``token_bytes``-long tokens) with their persons, one row a
holder, a token held by more than ``max_records`` records dropped.

``linkage_apply(...)``: takes the linkage advisory lock, then (when ``seen_*`` is given) reads the
holders again and raises ``40001`` (serialization_failure) if they differ from what the caller
resolved against, else writes the batch's tokens, persons and merges. VOLATILE plpgsql: each of
its statements takes a fresh snapshot, so the check sees every linkage committed before the lock
was granted. Called inside the statement that writes the canonical rows, in autocommit, the lock
is held from the check to the commit's end and never while a client computes or a round trip
runs; two normalizer processes then no longer queue behind each other's Python and network.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION linkage_holders(ids uuid[], wanted bytea, token_bytes integer, max_records integer)
        RETURNS TABLE (tokens bytea, record_id uuid, person_id uuid, fields text)
        LANGUAGE sql STABLE AS $fn$
            WITH want AS (
                SELECT substring(wanted FROM g.i * token_bytes + 1 FOR token_bytes) AS token
                FROM generate_series(0, length(wanted) / token_bytes - 1) AS g(i)
            ), hit AS (
                SELECT q.token, s.record_id, count(*) OVER (PARTITION BY q.token) AS sharing
                FROM want q
                CROSS JOIN LATERAL (
                    SELECT t.record_id FROM linkage_tokens t WHERE t.token = q.token LIMIT max_records + 1
                ) s
            ), held AS (
                SELECT hit.record_id, string_agg(hit.token, ''::bytea) AS tokens
                FROM hit WHERE hit.sharing <= max_records GROUP BY hit.record_id
            )
            SELECT NULL::bytea, rp.record_id, rp.person_id, NULL::text
            FROM record_persons rp WHERE rp.record_id = ANY(ids)
            UNION ALL
            -- A holder's person by its key, one lookup a holder (LIMIT keeps the planner from
            -- turning it into a join, which it did as a scan of the whole table).
            SELECT held.tokens, held.record_id, rp.person_id, array_to_string(rp.fields, ',')
            FROM held CROSS JOIN LATERAL (
                SELECT p.person_id, p.fields FROM record_persons p WHERE p.record_id = held.record_id LIMIT 1
            ) rp
        $fn$
    """)
    op.execute("""
        CREATE FUNCTION linkage_apply(
            lock_key bigint, ids uuid[], wanted bytea, token_bytes integer, max_records integer,
            seen_records uuid[], seen_persons uuid[], seen_tokens integer[],
            store_records uuid[], store_keys text[], store_recipes text[], store_tokens bytea[],
            person_records uuid[], person_ids uuid[], person_fields text[],
            merge_into uuid[], merge_absorbed uuid[]
        ) RETURNS boolean
        LANGUAGE plpgsql VOLATILE AS $fn$
        BEGIN
            PERFORM pg_advisory_xact_lock(lock_key);
            IF seen_records IS NOT NULL AND (
                WITH fresh AS MATERIALIZED (
                    SELECT h.record_id, h.person_id, coalesce(length(h.tokens) / token_bytes, 0) AS n
                    FROM linkage_holders(ids, wanted, token_bytes, max_records) h
                ), seen AS MATERIALIZED (
                    SELECT * FROM unnest(seen_records, seen_persons, seen_tokens) AS u(record_id, person_id, n)
                )
                SELECT EXISTS (
                    (SELECT * FROM fresh EXCEPT ALL SELECT * FROM seen)
                    UNION ALL
                    (SELECT * FROM seen EXCEPT ALL SELECT * FROM fresh)
                )
            ) THEN
                RAISE EXCEPTION 'linkage candidates changed since they were read' USING ERRCODE = '40001';
            END IF;
            WITH stored AS (
                INSERT INTO record_linkage (record_id, key_id, recipes, tokens)
                SELECT r, k, string_to_array(rs, ','), ts
                FROM unnest(store_records, store_keys, store_recipes, store_tokens) AS u(r, k, rs, ts)
                ON CONFLICT (record_id, key_id) DO NOTHING
                RETURNING record_linkage.record_id, record_linkage.tokens
            )
            INSERT INTO linkage_tokens (token, record_id)
            SELECT substring(s.tokens FROM g.i * token_bytes + 1 FOR token_bytes), s.record_id
            FROM stored s CROSS JOIN LATERAL generate_series(0, length(s.tokens) / token_bytes - 1) AS g(i);
            INSERT INTO record_persons (record_id, person_id, fields)
            SELECT r, p, string_to_array(f, ',') FROM unnest(person_records, person_ids, person_fields) AS u(r, p, f)
            ON CONFLICT (record_id) DO NOTHING;
            IF cardinality(merge_into) > 0 THEN
                -- Each absorbed person's records and earlier merges re-pointed to its survivor.
                UPDATE record_persons rp SET person_id = m.s
                FROM unnest(merge_into, merge_absorbed) AS m(s, a) WHERE rp.person_id = m.a;
                UPDATE person_merges pm SET merged_into = m.s
                FROM unnest(merge_into, merge_absorbed) AS m(s, a) WHERE pm.merged_into = m.a;
                INSERT INTO person_merges (person_id, merged_into)
                SELECT m.a, m.s FROM unnest(merge_into, merge_absorbed) AS m(s, a)
                ON CONFLICT (person_id) DO UPDATE SET merged_into = EXCLUDED.merged_into, merged_at = now();
            END IF;
            RETURN true;
        END
        $fn$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION linkage_apply(bigint, uuid[], bytea, integer, integer, uuid[], uuid[], integer[], "
               "uuid[], text[], text[], bytea[], uuid[], uuid[], text[], uuid[], uuid[])")
    op.execute("DROP FUNCTION linkage_holders(uuid[], bytea, integer, integer)")
