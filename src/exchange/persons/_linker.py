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

import functools
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from exchange.adapters.postgres import Connection, Database
from exchange.events import uuid7
from exchange.linkage import DEFAULT_MODEL, TOKEN_BYTES, Candidate, Field, KeyTokens, Model, assign
from exchange.persons._queries import latest_model

__all__ = ("LINKAGE_LOCK", "MAX_TOKEN_RECORDS", "LinkRequest", "Linked", "PersonLinker", "store_tokens")

# pg_advisory_xact_lock key of the linkage step (an arbitrary constant of this application).
LINKAGE_LOCK = 0x6C696E6B61676531  # "linkage1"
# A token shared by more records than this is too common to tell people apart (test data naming
# one patient thousands of times, a placeholder value): it makes no candidates, so a record's
# lookup reads at most this many rows a token. The rebuild applies the same rule.
MAX_TOKEN_RECORDS = 200
MODEL_REFRESH_S = 60.0


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """A record that just became canonical, with its tokens (every key of the ring) and fields."""

    record_id: str
    tokens: Sequence[KeyTokens]
    fields: frozenset[Field]


@dataclass(frozen=True, slots=True)
class Linked:
    record_id: str
    person_id: str


_LOCK = "SELECT pg_advisory_xact_lock($1)"
# After the lock, one read: the requests that already have a person (a redelivery: ``tokens`` is
# null), and the records holding any of the batch's tokens (each token unique to its key id and
# recipe) with their persons, one row a holder with the batch's tokens it holds concatenated; a
# token held by more than MAX_TOKEN_RECORDS records is dropped (``sharing``). One row a holder,
# not a token: a common token's holders repeat across tokens, and each row costs the client more
# than its bytes. The tokens come as one concatenated bytea too: an array of thousands of small
# values costs the client ~20x more CPU to encode than the same bytes in one value.
_READ = f"""
WITH wanted AS (
    SELECT substring($2::bytea FROM g.i * {TOKEN_BYTES} + 1 FOR {TOKEN_BYTES}) AS token
    FROM generate_series(0, length($2::bytea) / {TOKEN_BYTES} - 1) AS g(i)
), hit AS (
    SELECT q.token, s.record_id, count(*) OVER (PARTITION BY q.token) AS sharing
    FROM wanted q
    CROSS JOIN LATERAL (
        SELECT t.record_id FROM linkage_tokens t WHERE t.token = q.token LIMIT {MAX_TOKEN_RECORDS + 1}
    ) s
)
SELECT NULL::bytea AS tokens, rp.record_id::text AS record_id, rp.person_id::text AS person_id, NULL AS fields
FROM record_persons rp WHERE rp.record_id = ANY($1::uuid[])
UNION ALL
SELECT string_agg(hit.token, ''::bytea), rp.record_id::text, rp.person_id::text,
       array_to_string(rp.fields, ',')
FROM hit JOIN record_persons rp ON rp.record_id = hit.record_id
WHERE hit.sharing <= {MAX_TOKEN_RECORDS}
GROUP BY rp.record_id, rp.person_id, rp.fields
"""
# A record's tokens under one key (one row), and from it the lookup rows: only for rows this
# statement inserted, so storing a record twice stores its tokens once.
_STORED = f"""
    stored AS (
        INSERT INTO record_linkage (record_id, key_id, recipes, tokens)
        SELECT r, k, string_to_array(rs, ','), ts
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[]) AS u(r, k, rs, ts)
        ON CONFLICT (record_id, key_id) DO NOTHING
        RETURNING record_id, tokens
    ), lookup AS (
        INSERT INTO linkage_tokens (token, record_id)
        SELECT substring(s.tokens FROM g.i * {TOKEN_BYTES} + 1 FOR {TOKEN_BYTES}), s.record_id
        FROM stored s CROSS JOIN LATERAL generate_series(0, length(s.tokens) / {TOKEN_BYTES} - 1) AS g(i)
    )"""
_STORE = f"WITH {_STORED.strip()}\nSELECT count(*) FROM stored"
# The batch's writes in one statement: its tokens, and each record's person.
_STORE_WITH_PERSONS = f"""
WITH {_STORED.strip()}, persons AS (
    INSERT INTO record_persons (record_id, person_id, fields)
    SELECT r, p, string_to_array(f, ',') FROM unnest($5::uuid[], $6::uuid[], $7::text[]) AS u(r, p, f)
    ON CONFLICT (record_id) DO NOTHING
)
SELECT count(*) FROM stored
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


def _token_columns(records: Sequence[tuple[str, Sequence[KeyTokens]]]) -> list[list[Any]]:
    """``_STORED``'s four arrays: per record and key id, its recipes and its digests in one value."""
    ids: list[str] = []
    key_ids: list[str] = []
    recipes: list[str] = []
    digests: list[bytes] = []
    for record_id, blocks in records:
        for block in blocks:
            if block.digests:
                ids.append(record_id)
                key_ids.append(block.key_id)
                recipes.append(",".join(block.recipes))
                digests.append(b"".join(block.digests))
    return [ids, key_ids, recipes, digests]


async def store_tokens(conn: Connection, records: Sequence[tuple[str, Sequence[KeyTokens]]]) -> None:
    """Each record's tokens: per key id, its row of recipes and digests, and the lookup rows."""
    await conn.execute(_STORE, *_token_columns(records))


@functools.lru_cache(maxsize=64)
def fields_text(fields: frozenset[Field]) -> str:
    return ",".join(sorted(f.value for f in fields))


@functools.lru_cache(maxsize=64)
def fields_of(text: str) -> frozenset[Field]:
    """``fields_text`` read back (a record's stored fields, as the read gives them)."""
    return frozenset(Field(f) for f in text.split(",") if f)


@dataclass
class _Batch:
    """What the batch has decided so far: tokens of its records, persons, merges made in it."""

    index: dict[bytes, list[str]] = field(default_factory=lambda: defaultdict(list))
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

    async def link(self, conn: Connection, requests: Sequence[LinkRequest]) -> list[Linked]:
        """Store tokens and persons of ``requests`` in the caller's transaction; answers in order.

        A record that already has a person (a redelivery) keeps it and is answered with it.
        """
        await conn.execute(_LOCK, LINKAGE_LOCK)
        model = await self.model(conn)
        ids = [r.record_id for r in requests]
        every = [d for r in requests for block in r.tokens for d in block.digests]
        done: dict[str, str] = {}
        holders: dict[bytes, list[tuple[str, str, frozenset[Field]]]] = defaultdict(list)
        for tokens, record_id, person_id, fields in await conn.fetch(_READ, ids, b"".join(set(every))):
            if tokens is None:
                done[record_id] = person_id
                continue
            holder = (record_id, person_id, fields_of(fields))
            for i in range(0, len(tokens), TOKEN_BYTES):
                holders[tokens[i:i + TOKEN_BYTES]].append(holder)
        todo = [(n, r) for n, r in enumerate(requests) if r.record_id not in done]
        answers: dict[int, Linked] = {}
        if todo:
            await self._resolve(conn, model, todo, holders, answers)
        for n, r in enumerate(requests):
            if r.record_id in done:
                answers[n] = Linked(r.record_id, done[r.record_id])
        return [answers[n] for n in range(len(requests))]

    async def _resolve(self, conn: Connection, model: Model, todo: list[tuple[int, LinkRequest]],
                       holders: dict[bytes, list[tuple[str, str, frozenset[Field]]]],
                       answers: dict[int, Linked]) -> None:
        """Persons for records that have none yet, each seeing the stored records and the batch's
        earlier records it shares tokens with; then their tokens, persons and merges are written.

        Most records share no token with anything: only tokens that some stored record holds or
        that two records of the batch share (``relevant``) are looked at one by one."""
        every = [d for _n, r in todo for block in r.tokens for d in block.digests]
        repeated = {d for d, count in Counter(every).items() if count > 1}
        relevant = holders.keys() | repeated
        batch = _Batch()
        new_rows: list[tuple[str, str, str]] = []
        merges: list[tuple[str, tuple[str, ...]]] = []
        for n, r in todo:
            # The recipes each other record agrees on: a shared token's recipe is this record's.
            agreeing: dict[str, set[str]] = defaultdict(set)
            seen: dict[str, tuple[str, frozenset[Field]]] = {}
            for block in r.tokens:
                if relevant.isdisjoint(block.digests):
                    continue
                for recipe, token in zip(block.recipes, block.digests, strict=True):
                    for other, their_person, fields in holders.get(token, ()):
                        agreeing[other].add(recipe)
                        seen[other] = (their_person, fields)
                    for other in batch.index.get(token, ()):
                        agreeing[other].add(recipe)
                        seen[other] = (batch.person[other], batch.fields[other])
                    if token in repeated:
                        batch.index[token].append(r.record_id)
            person: str | None = None
            if agreeing:
                candidates = [Candidate(o, batch.resolve(seen[o][0]), frozenset(rs), seen[o][1])
                              for o, rs in agreeing.items()]
                decision = assign(r.fields, candidates, model)
                person = decision.person_id or str(uuid7())
                if decision.merged:
                    merges.append((person, decision.merged))
                    for absorbed in decision.merged:
                        batch.merged_into[absorbed] = person
            if person is None:
                person = str(uuid7())
            batch.person[r.record_id] = person
            batch.fields[r.record_id] = r.fields
            new_rows.append((r.record_id, person, fields_text(r.fields)))
            answers[n] = Linked(r.record_id, person)
        # Rows name the person each record joined; a later record of the batch may have merged it.
        await conn.execute(_STORE_WITH_PERSONS, *_token_columns([(r.record_id, r.tokens) for _n, r in todo]),
                           [row[0] for row in new_rows], [batch.resolve(row[1]) for row in new_rows],
                           [row[2] for row in new_rows])
        for survivor, absorbed_ids in merges:
            await conn.execute(_MERGE, batch.resolve(survivor), list(absorbed_ids))
