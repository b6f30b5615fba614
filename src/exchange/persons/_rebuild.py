"""The full re-resolution: fit the model on our own records, recompute every person, keep ids.

Tokens are the source of truth. The job reads every candidate pair (records sharing a token
under a key id; during a key rotation, under either) and every record's fields, fits the
Fellegi-Sunter model by EM on those aggregates (``exchange.linkage.estimate``), stores it (the
normalizers read it within a minute),
then groups records into the connected components of the pairs the model links: what the
incremental step builds in any arrival order, with one model throughout.

Person ids survive: each component keeps the old id most of its records had (the oldest id on a
tie); an old id no component keeps is recorded as merged into the component that holds most of
its records, so every id once handed out still answers. It runs under the linkage lock, so no
record is linked while persons are rewritten; a second run with the same model changes nothing.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from exchange.adapters.postgres import Connection, Database
from exchange.events import uuid7
from exchange.linkage import TOKEN_BYTES, Field, Model, estimate, pattern
from exchange.persons._linker import LINKAGE_LOCK, MAX_TOKEN_RECORDS, mark_changed
from exchange.persons._queries import latest_model

__all__ = ("Partition", "PersonsRebuild", "RebuildProgress")

# Tokens shared by more than MAX_TOKEN_RECORDS records make no pairs, as in the incremental step.
_PAIRS = f"""
WITH flat AS (
    SELECT r.record_id, substring(r.tokens FROM g.i * {TOKEN_BYTES} + 1 FOR {TOKEN_BYTES}) AS token,
           r.recipes[g.i + 1] AS recipe
    FROM record_linkage r CROSS JOIN LATERAL generate_series(0, length(r.tokens) / {TOKEN_BYTES} - 1) AS g(i)
), usable AS (
    SELECT token FROM flat GROUP BY token HAVING count(*) BETWEEN 2 AND {MAX_TOKEN_RECORDS}
)
SELECT a.record_id::text AS r1, b.record_id::text AS r2, array_agg(DISTINCT a.recipe) AS recipes
FROM usable u
JOIN flat a ON a.token = u.token
JOIN flat b ON b.token = u.token AND b.record_id > a.record_id
GROUP BY a.record_id, b.record_id
"""
_RECORDS = "SELECT record_id::text AS record_id, person_id::text AS person_id, fields FROM record_persons"
_SAVE_MODEL = "INSERT INTO linkage_models (records, model) VALUES ($1, $2::jsonb) RETURNING model_id"
_LOCK = "SELECT pg_advisory_xact_lock($1)"
_MOVE = """
UPDATE record_persons rp SET person_id = u.p, linked_at = now()
FROM unnest($1::uuid[], $2::uuid[]) AS u(r, p)
WHERE rp.record_id = u.r AND rp.person_id <> u.p
"""
_MERGED = """
INSERT INTO person_merges (person_id, merged_into)
SELECT a, s FROM unnest($1::uuid[], $2::uuid[]) AS u(a, s)
ON CONFLICT (person_id) DO UPDATE SET merged_into = EXCLUDED.merged_into, merged_at = now()
"""
# An id that is a person again is no longer an absorbed one; chains collapse to one hop.
_UNMERGE = "DELETE FROM person_merges WHERE person_id = ANY($1::uuid[])"
_REHOME = """
UPDATE person_merges m SET merged_into = u.s
FROM unnest($1::uuid[], $2::uuid[]) AS u(a, s)
WHERE m.merged_into = u.a
"""


@dataclass(slots=True)
class RebuildProgress:
    phase: str = "reading"
    records: int = 0
    pairs: int = 0
    changed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "records": self.records, "pairs": self.pairs, "changed": self.changed}


@dataclass
class Partition:
    """Records grouped into components by union-find over the linked pairs."""

    parent: dict[str, str] = field(default_factory=dict)

    def find(self, x: str) -> str:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while x != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def components(self, records: Iterable[str]) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = defaultdict(list)
        for r in records:
            groups[self.find(r)].append(r)
        return groups


@dataclass(frozen=True, slots=True)
class _Snapshot:
    person: dict[str, str]
    fields: dict[str, frozenset[Field]]
    pairs: list[tuple[str, str, frozenset[str]]]


def label(components: dict[str, list[str]], old: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """New person of each record, and the old ids no component keeps -> where they went.

    A component keeps the old id most of its records had (the oldest on a tie), unless a
    component holding more of that id's records keeps it; components left without one get new ids.
    """
    claims: list[tuple[int, str, str]] = []  # (-count, old id, component root)
    for root, members in components.items():
        for old_id, count in Counter(old[r] for r in members if r in old).items():
            claims.append((-count, old_id, root))
    claims.sort()
    kept: dict[str, str] = {}  # component root -> id
    taken: set[str] = set()
    for _neg, old_id, root in claims:
        if root not in kept and old_id not in taken:
            kept[root] = old_id
            taken.add(old_id)
    person: dict[str, str] = {}
    for root, members in sorted(components.items()):
        pid = kept.get(root) or str(uuid7())
        for r in members:
            person[r] = pid
    absorbed: dict[str, str] = {}
    for old_id in {old[r] for r in old} - taken:
        holders = Counter(person[r] for r in old if old[r] == old_id and r in person)
        if holders:
            absorbed[old_id] = min(holders.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return person, absorbed


class PersonsRebuild:
    """``exchange derive persons``: refit, recompute, rewrite (or ``verify``: recompute, compare)."""

    name = "persons"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _snapshot(self, conn: Connection) -> _Snapshot:
        person: dict[str, str] = {}
        fields: dict[str, frozenset[Field]] = {}
        for row in await conn.fetch(_RECORDS):
            person[row["record_id"]] = row["person_id"]
            fields[row["record_id"]] = frozenset(Field(f) for f in row["fields"])
        pairs = [(row["r1"], row["r2"], frozenset(row["recipes"])) for row in await conn.fetch(_PAIRS)
                 if row["r1"] in fields and row["r2"] in fields]
        return _Snapshot(person, fields, pairs)

    @staticmethod
    def _fit(snap: _Snapshot) -> Model:
        evidence: Counter[tuple[frozenset[str], frozenset[Field]]] = Counter(
            (recipes, snap.fields[a] & snap.fields[b]) for a, b, recipes in snap.pairs)
        presence: Counter[frozenset[Field]] = Counter(snap.fields.values())
        return estimate(evidence, presence)

    @staticmethod
    def _partition(snap: _Snapshot, model: Model) -> dict[str, list[str]]:
        parts = Partition()
        for a, b, recipes in snap.pairs:
            if model.links(pattern(recipes, snap.fields[a] & snap.fields[b])):
                parts.union(a, b)
        return parts.components(snap.person)

    async def run(self, *, dry_run: bool, fit: bool = True,
                  on_progress: Callable[[RebuildProgress], None] | None = None) -> dict[str, Any]:
        started = time.monotonic()
        progress = RebuildProgress()
        async with self._db.transaction() as conn:
            await conn.execute(_LOCK, LINKAGE_LOCK)
            snap = await self._snapshot(conn)
            progress.records, progress.pairs, progress.phase = len(snap.person), len(snap.pairs), "fitting"
            if on_progress is not None:
                on_progress(progress)
            model = self._fit(snap) if fit and snap.pairs else await latest_model(conn)
            model_id = None
            if fit and snap.pairs and not dry_run:
                model_id = await conn.fetchval(_SAVE_MODEL, len(snap.person), model.to_json())
            progress.phase = "grouping"
            components = self._partition(snap, model)
            person, absorbed = label(components, snap.person)
            moved = [(r, p) for r, p in person.items() if snap.person.get(r) != p]
            progress.changed, progress.phase = len(moved), "writing"
            if on_progress is not None:
                on_progress(progress)
            if not dry_run:
                await conn.execute(_MOVE, [r for r, _ in moved], [p for _, p in moved])
                await conn.execute(_UNMERGE, sorted(set(person.values())))
                await conn.execute(_MERGED, list(absorbed), list(absorbed.values()))
                await conn.execute(_REHOME, list(absorbed), list(absorbed.values()))
                await mark_changed(conn)  # plans read before this are checked against what it wrote
        return {
            "dataset": self.name, "dry_run": dry_run, "records": len(snap.person),
            "pairs": len(snap.pairs), "persons_before": len(set(snap.person.values())),
            "persons_after": len(set(person.values())), "records_moved": len(moved),
            "ids_absorbed": len(absorbed), "model_id": model_id, "threshold_bits": round(model.threshold, 2),
            "seconds": round(time.monotonic() - started, 3),
        }

    async def verify(self) -> dict[str, Any]:
        """Recompute persons with the current model and compare with the stored ones."""
        async with self._db.connection() as conn:
            snap = await self._snapshot(conn)
            model = await latest_model(conn)
        components = self._partition(snap, model)
        split = [root for root, members in components.items() if len({snap.person[r] for r in members}) > 1]
        spans: dict[str, set[str]] = defaultdict(set)
        for root, members in components.items():
            for r in members:
                spans[snap.person[r]].add(root)
        merged_apart = [p for p, roots in spans.items() if len(roots) > 1]
        return {
            "dataset": self.name, "records": len(snap.person), "persons_stored": len(spans),
            "persons_computed": len(components), "should_merge": len(split), "should_split": len(merged_apart),
            "persons_to_split": sorted(merged_apart)[:20],
            "records_to_merge": sorted(sorted(components[root])[0] for root in split)[:20],
            "agrees": not split and not merged_apart,
        }
