"""The incremental person step: in the canonical write's transaction, each new record's tokens are
stored and the record joins, merges or starts a person (``exchange.linkage.assign``).

Concurrency: two records of one person resolved at the same moment in two transactions would
not see each other's tokens and would stay two persons forever. So the step takes one
transaction-scoped advisory lock before it reads candidates: linkage transactions run one at a
time across every normalizer process (they are a few statements a batch). Per-token locks would
let more through at once but take dozens of lock slots a record, and PostgreSQL's lock table is
shared and bounded.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from exchange.adapters.postgres import Connection, Database
from exchange.events import uuid7
from exchange.linkage import DEFAULT_MODEL, Candidate, Field, Model, assign
from exchange.persons._queries import latest_model

__all__ = ("LINKAGE_LOCK", "MAX_TOKEN_RECORDS", "LinkRequest", "Linked", "PersonLinker", "StoredToken")

# pg_advisory_xact_lock key of the linkage step (an arbitrary constant of this application).
LINKAGE_LOCK = 0x6C696E6B61676531  # "linkage1"
# A token shared by more records than this is too common to tell people apart (test data naming
# one patient thousands of times, a placeholder value): it makes no candidates, so a record's
# lookup reads at most this many rows a token. The rebuild applies the same rule.
MAX_TOKEN_RECORDS = 200
MODEL_REFRESH_S = 60.0


@dataclass(frozen=True, slots=True)
class StoredToken:
    key_id: str
    recipe: str
    token: bytes

    def __repr__(self) -> str:
        return f"StoredToken({self.key_id!r}, {self.recipe!r}, <token>)"


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """A record that just became canonical, with its tokens (every key of the ring) and fields."""

    record_id: str
    tokens: tuple[StoredToken, ...]
    fields: frozenset[Field]


@dataclass(frozen=True, slots=True)
class Linked:
    record_id: str
    person_id: str
    merged: tuple[str, ...] = ()
    linked_records: tuple[str, ...] = ()
    new_person: bool = False


_LOCK = "SELECT pg_advisory_xact_lock($1)"
_ALREADY = "SELECT record_id::text, person_id::text FROM record_persons WHERE record_id = ANY($1::uuid[])"
_CANDIDATES = f"""
WITH q AS (SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::bytea[]) AS q(n, key_id, recipe, token)),
shared AS (
    SELECT q.n, q.recipe, s.record_id, count(*) OVER (PARTITION BY q.n, q.key_id, q.recipe, q.token) AS sharing
    FROM q CROSS JOIN LATERAL (
        SELECT t.record_id FROM linkage_tokens t
        WHERE t.key_id = q.key_id AND t.recipe = q.recipe AND t.token = q.token
        LIMIT {MAX_TOKEN_RECORDS + 1}
    ) s
)
SELECT sh.n, sh.record_id::text AS record_id, array_agg(DISTINCT sh.recipe) AS recipes,
       rp.person_id::text AS person_id, rp.fields
FROM shared sh JOIN record_persons rp ON rp.record_id = sh.record_id
WHERE sh.sharing <= {MAX_TOKEN_RECORDS}
GROUP BY sh.n, sh.record_id, rp.person_id, rp.fields
"""
_INSERT_TOKENS = """
INSERT INTO linkage_tokens (record_id, key_id, recipe, token)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[])
ON CONFLICT DO NOTHING
"""
_INSERT_PERSONS = """
INSERT INTO record_persons (record_id, person_id, fields)
SELECT r, p, string_to_array(f, ',') FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS u(r, p, f)
ON CONFLICT (record_id) DO NOTHING
"""
# A merge re-points the absorbed persons' records and earlier merges into them (one hop to the
# survivor for every id ever handed out) and records the absorbed ids.
_MERGE = """
WITH moved AS (
    UPDATE record_persons SET person_id = $1::uuid WHERE person_id = ANY($2::uuid[])
), rehomed AS (
    UPDATE person_merges SET merged_into = $1::uuid WHERE merged_into = ANY($2::uuid[])
)
INSERT INTO person_merges (person_id, merged_into)
SELECT a, $1::uuid FROM unnest($2::uuid[]) AS a
ON CONFLICT (person_id) DO UPDATE SET merged_into = EXCLUDED.merged_into, merged_at = now()
"""


def fields_text(fields: frozenset[Field]) -> str:
    return ",".join(sorted(f.value for f in fields))


@dataclass
class _Batch:
    """What the batch has decided so far: tokens of its records, persons, merges made in it."""

    index: dict[tuple[str, str, bytes], list[str]] = field(default_factory=lambda: defaultdict(list))
    person: dict[str, str] = field(default_factory=dict)
    fields: dict[str, frozenset[Field]] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)

    def resolve(self, person: str) -> str:
        while person in self.merged_into:
            person = self.merged_into[person]
        return person


class PersonLinker:
    """Persons for records as they become canonical; the model is the newest fitted one."""

    def __init__(self, db: Database, *, model: Model | None = None) -> None:
        self._db = db
        self._fixed = model
        self._model = model or DEFAULT_MODEL
        self._loaded_at = float("-inf")

    async def model(self, conn: Connection) -> Model:
        if self._fixed is None and time.monotonic() - self._loaded_at >= MODEL_REFRESH_S:
            self._model = await latest_model(conn)
            self._loaded_at = time.monotonic()
        return self._model

    def forget_model(self) -> None:
        """Read the model again at the next batch (after a refit)."""
        self._loaded_at = float("-inf")

    async def link(self, conn: Connection, requests: Sequence[LinkRequest]) -> list[Linked]:
        """Store tokens and persons of ``requests`` in the caller's transaction; answers in order.

        A record that already has a person (a redelivery) keeps it and is answered with it.
        """
        await conn.execute(_LOCK, LINKAGE_LOCK)
        model = await self.model(conn)
        ids = [r.record_id for r in requests]
        done = {row["record_id"]: row["person_id"] for row in await conn.fetch(_ALREADY, ids)}
        todo = [(n, r) for n, r in enumerate(requests) if r.record_id not in done]
        found: dict[int, list[Candidate]] = defaultdict(list)
        if todo:
            cols: tuple[list[int], list[str], list[str], list[bytes]] = ([], [], [], [])
            for n, r in todo:
                for t in r.tokens:
                    cols[0].append(n)
                    cols[1].append(t.key_id)
                    cols[2].append(t.recipe)
                    cols[3].append(t.token)
            for row in await conn.fetch(_CANDIDATES, *cols):
                found[row["n"]].append(Candidate(
                    row["record_id"], row["person_id"], frozenset(row["recipes"]),
                    frozenset(Field(f) for f in row["fields"])))
        batch = _Batch()
        answers: dict[int, Linked] = {}
        new_rows: list[tuple[str, str, str]] = []
        merges: list[tuple[str, tuple[str, ...]]] = []
        for n, r in todo:
            candidates = [Candidate(c.record_id, batch.resolve(c.person_id), c.agreeing, c.fields) for c in found[n]]
            in_batch: dict[str, set[str]] = defaultdict(set)
            for t in r.tokens:
                for other in batch.index.get((t.key_id, t.recipe, t.token), ()):
                    in_batch[other].add(t.recipe)
            candidates += [Candidate(o, batch.resolve(batch.person[o]), frozenset(rs), batch.fields[o])
                           for o, rs in in_batch.items()]
            decision = assign(r.fields, candidates, model)
            person = decision.person_id or str(uuid7())
            if decision.merged:
                merges.append((person, decision.merged))
                for absorbed in decision.merged:
                    batch.merged_into[absorbed] = person
            batch.person[r.record_id] = person
            batch.fields[r.record_id] = r.fields
            for t in r.tokens:
                batch.index[(t.key_id, t.recipe, t.token)].append(r.record_id)
            new_rows.append((r.record_id, person, fields_text(r.fields)))
            answers[n] = Linked(r.record_id, person, decision.merged, decision.linked_records,
                                new_person=decision.person_id is None)
        if todo:
            token_cols: tuple[list[str], list[str], list[str], list[bytes]] = ([], [], [], [])
            for _n, r in todo:
                for t in r.tokens:
                    token_cols[0].append(r.record_id)
                    token_cols[1].append(t.key_id)
                    token_cols[2].append(t.recipe)
                    token_cols[3].append(t.token)
            await conn.execute(_INSERT_TOKENS, *token_cols)
            # Rows name the person each record joined; a later record of the batch may have merged it.
            await conn.execute(_INSERT_PERSONS, [row[0] for row in new_rows],
                               [batch.resolve(row[1]) for row in new_rows], [row[2] for row in new_rows])
            for survivor, absorbed_ids in merges:
                await conn.execute(_MERGE, batch.resolve(survivor), list(absorbed_ids))
        for n, r in enumerate(requests):
            if r.record_id in done:
                answers[n] = Linked(r.record_id, done[r.record_id])
        return [answers[n] for n in range(len(requests))]

