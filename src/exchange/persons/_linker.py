"""The incremental person step: in the canonical write's transaction, each new record's tokens are
stored and the record joins, merges or starts a person (``exchange.linkage.assign``).

Concurrency: two records of one person resolved at the same moment in two transactions would
not see each other's tokens and would stay two persons forever. So every linkage write takes one
transaction-scoped advisory lock (``LINKAGE_LOCK``) and writes only what was decided against the
candidates as they are under that lock. The normalizer reads and decides without the lock
(``plan``); ``linkage_apply`` (migrations 0007, 0008) stores the batch's tokens, takes the lock
inside the statement that writes the batch, and refuses if another batch changed the candidates
meanwhile (the normalizer then plans again). It re-reads them only when its log of linkage writes
(``linkage_changes``) shows one since the plan's read that could have (ADR 0014). The lock is so
held only from that check to the commit, never across a round trip or the Python of a decision.
Per-token locks would take dozens of lock slots a record, and PostgreSQL's lock table is shared
and bounded.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from exchange.adapters.postgres import Connection, Database
from exchange.events import uuid7
from exchange.linkage import DEFAULT_MODEL, TOKEN_BYTES, Candidate, Field, KeyTokens, Model, assign
from exchange.persons._queries import latest_model

__all__ = ("LINKAGE_LOCK", "MAX_TOKEN_RECORDS", "LinkPlan", "LinkRequest", "Linked", "PersonLinker", "apply_call",
           "mark_changed", "store_tokens")

# pg_advisory_xact_lock key of the linkage step (an arbitrary constant of this application).
LINKAGE_LOCK = 0x6C696E6B61676531  # "linkage1"
# A token shared by more records than this is too common to tell people apart (test data naming
# one patient thousands of times, a placeholder value): it makes no candidates, so a record's
# lookup reads at most this many rows a token. The rebuild applies the same rule.
MAX_TOKEN_RECORDS = 200
MODEL_REFRESH_S = 60.0
# Optimistic writes a batch tries before it links under the lock from the start.
OPTIMISTIC_TRIES = 3


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
# The one read (``linkage_holders``, migration 0007): the requests that already have a person (a
# redelivery: ``tokens`` is null), and the records holding any of the batch's tokens (each token
# unique to its key id and recipe) with their persons, one row a holder with the batch's tokens it
# holds concatenated; a token held by more than MAX_TOKEN_RECORDS records is dropped. One row a
# holder, not a token: a common token's holders repeat across tokens, and each row costs the
# client more than its bytes. The tokens go as one concatenated bytea: an array of thousands of
# small values costs the client ~20x more CPU to encode than the same bytes in one value. One more
# row, in the same snapshot, carries the linkage log's clock (migration 0008): what the apply
# compares to learn whether anything was linked since.
_READ = (f"SELECT NULL::bytea AS tokens, NULL::text AS record_id, NULL::text AS person_id, NULL::text AS fields, "
         f"(SELECT coalesce(max(clock), 0) FROM linkage_changes) AS clock "
         f"UNION ALL "
         f"SELECT tokens, record_id::text, person_id::text, fields, NULL "
         f"FROM linkage_holders($1::uuid[], $2::bytea, {TOKEN_BYTES}, {MAX_TOKEN_RECORDS})")
_APPLY_TYPES = ("uuid[]", "bytea", "uuid[]", "uuid[]", "int[]", "bigint", "uuid[]", "text[]", "text[]", "bytea[]",
                "uuid[]", "uuid[]", "text[]", "uuid[]", "uuid[]")


def apply_call(first: int) -> str:
    """``linkage_apply(...)`` with its parameters numbered from ``$first``, in ``LinkPlan.args``'s
    order: the normalizer calls it inside the statement that writes its canonical rows."""
    p = [f"${first + i}::{t}" for i, t in enumerate(_APPLY_TYPES)]
    return (f"linkage_apply({LINKAGE_LOCK}, {p[0]}, {p[1]}, {TOKEN_BYTES}, {MAX_TOKEN_RECORDS}, "
            + ", ".join(p[2:]) + ")")


_APPLY = f"SELECT {apply_call(1)}"
# Marks the linkage log "anything may have changed" (a rebuild, a key retirement): a plan read
# before it is checked by reading its candidates again. Under the lock, like every linkage write.
_CHANGED = "INSERT INTO linkage_changes (tokens) VALUES (NULL)"


def _token_columns(records: Sequence[tuple[str, Sequence[KeyTokens]]]) -> list[list[Any]]:
    """``linkage_apply``'s four token arrays: per record and key id, its recipes and its digests in one value."""
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
    """Each record's tokens: per key id, its row of recipes and digests, and the lookup rows (the key
    rotation's path: records that have persons). ``linkage_apply`` with no persons to write: it takes
    the lock to the caller's commit and logs the tokens, as every linkage write does."""
    await conn.execute(_APPLY, [], b"", None, None, None, None, *_token_columns(records), [], [], [], [], [])


async def mark_changed(conn: Connection) -> None:
    """Log, in the caller's transaction and under the linkage lock (held to its commit), that the
    linkage may have changed anywhere: for writes that do not go through ``linkage_apply``."""
    await conn.execute(_LOCK, LINKAGE_LOCK)
    await conn.execute(_CHANGED)


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

    def __init__(self, db: Database, *, model: Model | None = None,
                 on_refusal: Callable[[], object] = lambda: None) -> None:
        self._db = db
        self._fixed = model
        self._model = model or DEFAULT_MODEL
        self._loaded_at = float("-inf")
        self._turn = asyncio.Lock()
        self.refusals = 0
        self._on_refusal = on_refusal
        """Optimistic writes refused so far: another process had linked a candidate meanwhile."""

    async def model(self, conn: Connection) -> Model:
        if self._fixed is None and time.monotonic() - self._loaded_at >= MODEL_REFRESH_S:
            self._model = await latest_model(conn)
            self._loaded_at = time.monotonic()
        return self._model

    async def write_linked(self, requests: Sequence[LinkRequest], linked_sql: str, plain_sql: str,
                           args: Sequence[Any]) -> list[asyncpg.Record]:
        """Run ``linked_sql`` with ``args`` and then a plan's (it calls ``apply_call(len(args) + 1)``)
        in autocommit, the plan made without the lock; a refused plan is made again. After
        ``OPTIMISTIC_TRIES`` refusals, ``plain_sql`` and ``link`` in one transaction under the lock.
        This process's writes link one at a time: two of its own would only refuse each other."""
        async with self._turn:
            for _ in range(OPTIMISTIC_TRIES):
                async with self._db.connection() as conn:
                    plan = await self.plan(conn, requests)
                    try:
                        return list(await conn.fetch(linked_sql, *args, *plan.args))
                    # Refused (40001), or a deadlock (40P01): the write stores its tokens before it
                    # waits for the lock, so a redelivered record's twin in another process's locked
                    # write can wait for it while it waits for the lock. Either way: plan again.
                    except asyncpg.TransactionRollbackError:
                        self.refusals += 1
                        self._on_refusal()
            async with self._db.transaction() as conn:
                result = list(await conn.fetch(plain_sql, *args))
                await self.link(conn, requests)
                return result

    async def link(self, conn: Connection, requests: Sequence[LinkRequest]) -> list[Linked]:
        """Store tokens and persons of ``requests`` in the caller's transaction; answers in order.
        The lock is taken first and held to the caller's commit (the key rotation's path, and the
        normalizer's after its optimistic tries lost).

        A record that already has a person (a redelivery) keeps it and is answered with it.
        """
        await conn.execute(_LOCK, LINKAGE_LOCK)
        plan = await self.plan(conn, requests, checked=False)
        await conn.execute(_APPLY, *plan.args)
        return plan.linked

    async def plan(self, conn: Connection, requests: Sequence[LinkRequest], *, checked: bool = True) -> LinkPlan:
        """Read the candidates and decide each record's person, writing nothing; ``LinkPlan.args``
        are ``linkage_apply``'s (``apply_call``). ``checked``: the apply re-reads the candidates
        under the lock and refuses (``40001``) if they changed since this read (it reads them again
        only if the linkage log shows a write since that could have changed them)."""
        model = await self.model(conn)
        ids = [r.record_id for r in requests]
        wanted = b"".join({d for r in requests for block in r.tokens for d in block.digests})
        done: dict[str, str] = {}
        holders: dict[bytes, list[tuple[str, str, frozenset[Field]]]] = defaultdict(list)
        seen: tuple[list[str], list[str], list[int]] = ([], [], [])
        clock = 0
        for tokens, record_id, person_id, fields, at in await conn.fetch(_READ, ids, wanted):
            if at is not None:
                clock = at
                continue
            seen[0].append(record_id)
            seen[1].append(person_id)
            seen[2].append(0 if tokens is None else len(tokens) // TOKEN_BYTES)
            if tokens is None:
                done[record_id] = person_id
                continue
            holder = (record_id, person_id, fields_of(fields))
            for i in range(0, len(tokens), TOKEN_BYTES):
                holders[tokens[i:i + TOKEN_BYTES]].append(holder)
        todo = [(n, r) for n, r in enumerate(requests) if r.record_id not in done]
        answers: dict[int, Linked] = {n: Linked(r.record_id, done[r.record_id])
                                      for n, r in enumerate(requests) if r.record_id in done}
        writes = _resolve(model, todo, holders, answers) if todo else _Writes()
        check: tuple[Any, ...] = (*seen, clock) if checked else (None, None, None, None)
        args = (ids, wanted, *check, *_token_columns([(r.record_id, r.tokens) for _n, r in todo]),
                writes.records, writes.persons, writes.fields, writes.merge_into, writes.merge_absorbed)
        return LinkPlan([answers[n] for n in range(len(requests))], args)


@dataclass(frozen=True, slots=True)
class LinkPlan:
    """A batch's persons as decided, and ``linkage_apply``'s arguments that write them."""

    linked: list[Linked]
    args: tuple[Any, ...]


@dataclass
class _Writes:
    """``linkage_apply``'s person and merge arrays."""

    records: list[str] = field(default_factory=list)
    persons: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    merge_into: list[str] = field(default_factory=list)
    merge_absorbed: list[str] = field(default_factory=list)


def _resolve(model: Model, todo: list[tuple[int, LinkRequest]],
             holders: dict[bytes, list[tuple[str, str, frozenset[Field]]]],
             answers: dict[int, Linked]) -> _Writes:
    """Persons for records that have none yet, each seeing the stored records and the batch's
    earlier records it shares tokens with.

    Most records share no token with anything: only tokens that some stored record holds or
    that two records of the batch share (``relevant``) are looked at one by one."""
    every = [d for _n, r in todo for block in r.tokens for d in block.digests]
    repeated = {d for d, count in Counter(every).items() if count > 1}
    relevant = holders.keys() | repeated
    batch = _Batch()
    new_rows: list[tuple[str, str, str]] = []
    absorbed_by: dict[str, str] = {}
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
            for absorbed in decision.merged:
                batch.merged_into[absorbed] = person
                absorbed_by[absorbed] = person
        if person is None:
            person = str(uuid7())
        batch.person[r.record_id] = person
        batch.fields[r.record_id] = r.fields
        new_rows.append((r.record_id, person, fields_text(r.fields)))
        answers[n] = Linked(r.record_id, person)
    # Rows name the person each record joined; a later record of the batch may have merged it.
    writes = _Writes()
    for record_id, person, fields_value in new_rows:
        writes.records.append(record_id)
        writes.persons.append(batch.resolve(person))
        writes.fields.append(fields_value)
    for absorbed, survivor in absorbed_by.items():
        writes.merge_absorbed.append(absorbed)
        writes.merge_into.append(batch.resolve(survivor))
    return writes
