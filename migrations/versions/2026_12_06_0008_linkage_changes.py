"""A log of linkage writes, so ``linkage_apply`` re-reads the candidates only when something that
could change them was written after the plan read them.

``linkage_changes``: one row a linkage write (``clock`` in lock order): the tokens it stored and
the persons it merged away; a row with null ``tokens`` means anything may have changed (a rebuild,
a key retirement). Writers hold the linkage lock to their commit, so clocks commit in order and a
plan that read ``max(clock) = c`` saw exactly the writes up to ``c``.

``linkage_apply`` gains ``seen_clock`` (the plan's ``c``). Under the lock it looks at the log
first: nothing written since ``c`` (one process's own batches, one at a time), or nothing since
that shares a token with the plan or merged a person it saw -- no re-read. Only otherwise (or when
the log no longer reaches back to ``c``: it keeps the newest ``KEPT`` writes) the candidates are
read again and compared, as before. Every write that stores tokens or merges logs itself and
trims the log.

The token store moves before the lock: a record's tokens are the same whatever person it gets,
and no candidate read sees them before the record has a person row (written under the lock, in
the same transaction). The lock then covers the check, the person rows, the merges and the log.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEPT = 256  # linkage writes the log keeps; a plan older than that is checked by re-reading

_SIGNATURE_0007 = ("bigint, uuid[], bytea, integer, integer, uuid[], uuid[], integer[], "
                   "uuid[], text[], text[], bytea[], uuid[], uuid[], text[], uuid[], uuid[]")
_SIGNATURE = ("bigint, uuid[], bytea, integer, integer, uuid[], uuid[], integer[], bigint, "
              "uuid[], text[], text[], bytea[], uuid[], uuid[], text[], uuid[], uuid[]")

# The token store: rows of records that have no person yet are seen by no one's candidate read
# (it joins each holder to its person), so logged 0008 stores them before taking the lock.
_STORE = """
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
"""
# Persons and merges, unchanged from 0007.
_PERSONS = """
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
"""


def _apply(*, logged: bool) -> str:
    params = """
            lock_key bigint, ids uuid[], wanted bytea, token_bytes integer, max_records integer,
            seen_records uuid[], seen_persons uuid[], seen_tokens integer[],{clock}
            store_records uuid[], store_keys text[], store_recipes text[], store_tokens bytea[],
            person_records uuid[], person_ids uuid[], person_fields text[],
            merge_into uuid[], merge_absorbed uuid[]""".format(clock=" seen_clock bigint," if logged else "")
    if not logged:  # 0007's function, for the downgrade
        return f"""
        CREATE FUNCTION linkage_apply({params}) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $fn$
        BEGIN
            PERFORM pg_advisory_xact_lock(lock_key);
            IF seen_records IS NOT NULL AND ({_CHANGED_CANDIDATES}) THEN
                RAISE EXCEPTION 'linkage candidates changed since they were read' USING ERRCODE = '40001';
            END IF;{_STORE}{_PERSONS}
            RETURN true;
        END
        $fn$"""
    return f"""
        CREATE FUNCTION linkage_apply({params}) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $fn$
        DECLARE
            latest bigint;
            unseen boolean := false;
            theirs bytea;
        BEGIN{_STORE}
            PERFORM pg_advisory_xact_lock(lock_key);
            SELECT coalesce(max(clock), 0) INTO latest FROM linkage_changes;
            -- Written since the plan read its candidates, and possibly about them: a write that
            -- stored one of its tokens, merged away a person it saw or says nothing of what it
            -- changed, or one the log no longer holds. Then, and only then, read them again.
            IF seen_records IS NOT NULL AND latest <> seen_clock THEN
                IF seen_clock < latest - {KEPT} OR seen_clock > latest THEN  -- trimmed past it, or reset
                    unseen := true;
                ELSE
                    -- One value of every token logged since (detoasted once), then a hashed
                    -- INTERSECT: joined row by row, the planner chose a nested loop over both sides.
                    SELECT coalesce(bool_or(c.tokens IS NULL OR c.absorbed && seen_persons), false),
                           coalesce(string_agg(c.tokens, ''::bytea), ''::bytea)
                    INTO unseen, theirs
                    FROM linkage_changes c WHERE c.clock > seen_clock;
                    unseen := unseen OR EXISTS (
                        SELECT substring(wanted FROM w.i * token_bytes + 1 FOR token_bytes)
                        FROM generate_series(0, length(wanted) / token_bytes - 1) AS w(i)
                        INTERSECT
                        SELECT substring(theirs FROM g.i * token_bytes + 1 FOR token_bytes)
                        FROM generate_series(0, length(theirs) / token_bytes - 1) AS g(i));
                END IF;
            END IF;
            IF unseen AND ({_CHANGED_CANDIDATES}) THEN
                RAISE EXCEPTION 'linkage candidates changed since they were read' USING ERRCODE = '40001';
            END IF;{_PERSONS}
            IF cardinality(store_records) > 0 OR cardinality(merge_into) > 0 THEN
                INSERT INTO linkage_changes (tokens, absorbed)
                SELECT coalesce(string_agg(t, ''::bytea), ''::bytea), merge_absorbed FROM unnest(store_tokens) AS t
                RETURNING clock INTO latest;
                DELETE FROM linkage_changes WHERE clock <= latest - {KEPT};
            END IF;
            RETURN true;
        END
        $fn$"""


# 0007's check: the holders read again (a fresh snapshot) differ from what the plan saw.
_CHANGED_CANDIDATES = """
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
"""


def upgrade() -> None:
    op.execute("""
        CREATE TABLE linkage_changes (
            clock     bigint GENERATED ALWAYS AS IDENTITY,
            tokens    bytea  NULL,
            absorbed  uuid[] NULL,
            CONSTRAINT pk_linkage_changes PRIMARY KEY (clock)
        )
    """)
    # Tokens are digests: compressing them only costs CPU.
    op.execute("ALTER TABLE linkage_changes ALTER COLUMN tokens SET STORAGE EXTERNAL")
    op.execute(f"DROP FUNCTION linkage_apply({_SIGNATURE_0007})")
    op.execute(_apply(logged=True))


def downgrade() -> None:
    op.execute(f"DROP FUNCTION linkage_apply({_SIGNATURE})")
    op.execute(_apply(logged=False))
    op.execute("DROP TABLE linkage_changes")
