"""Person resolution from token agreement: Fellegi-Sunter weights over fields, fitted by EM.

A candidate pair is two records sharing at least one linkage token. The recipes they agree on
tell, per field, the best level some agreeing recipe certifies (``pattern``); a field both
records have and no agreeing recipe vouches for counts as DIFFERENT. Exact pairs of fields are
recipes, so the pattern is the fields' true agreement whenever two fields agree.

The match weight is the sum, over the fields both records have, of log2(m/u): the probability
of that level among pairs of one person over that among pairs of two (splink's model, with
our levels). ``estimate`` fits m, u and the prior without labels, from aggregates SQL can
give. A pair links when its posterior reaches ``min_posterior`` (0.99): the threshold in bits
grows with the number of records, as chance agreements do.

Persons are the connected components of linked pairs, so the incremental rule (``assign``: a
new record joins every person it links to, merging them) gives the batch result in any order.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from exchange.linkage._recipes import FIELDS, RECIPES, Field, Level, LinkageToken, Recipe

__all__ = (
    "DEFAULT_MODEL",
    "Assignment",
    "Candidate",
    "Linker",
    "Model",
    "Pattern",
    "assign",
    "estimate",
    "fields_present",
    "pattern",
)

Pattern = tuple[Level | None, ...]  # per FIELDS; None: at least one record lacks the field
_LEVELS = tuple(Level)
_FLOOR = 1e-12
_MAX_DECISIONS = 1 << 16  # combinations remembered per model (far more than a feed repeats)


_Certified = dict[str, tuple[tuple[Field, Level], ...]]
_CERTIFIED: dict[int, tuple[tuple[Recipe, ...], _Certified]] = {}


def _certified(recipes: tuple[Recipe, ...]) -> _Certified:
    """Recipe id -> what it certifies, built once per recipe set (found by identity: the person
    step asks for every candidate pair, and hashing 37 recipes costs more than the answer)."""
    entry = _CERTIFIED.get(id(recipes))
    if entry is None or entry[0] is not recipes:
        if len(_CERTIFIED) > 64:  # research code makes recipe sets by the hundred
            _CERTIFIED.clear()
        entry = (recipes, {r.id: r.certifies for r in recipes})
        _CERTIFIED[id(recipes)] = entry
    return entry[1]


def fields_present(recipe_ids: Iterable[str], recipes: tuple[Recipe, ...] = RECIPES) -> frozenset[Field]:
    """The fields a record has, read from the recipes it has tokens for (what the service stores)."""
    by_id = _certified(recipes)
    return frozenset(f for rid in recipe_ids for f, _ in by_id[rid])


def pattern(agreeing: Iterable[str], observed: frozenset[Field], recipes: tuple[Recipe, ...] = RECIPES) -> Pattern:
    """Per field, the best level an agreeing recipe certifies; DIFFERENT if none; None if unobserved."""
    by_id = _certified(recipes)
    best: dict[Field, Level] = {}
    for rid in agreeing:
        for f, level in by_id[rid]:
            best[f] = min(best.get(f, Level.DIFFERENT), level)
    return tuple((best.get(f, Level.DIFFERENT) if f in observed else None) for f in FIELDS)


@dataclass(frozen=True, slots=True)
class Model:
    """m and u per field and level (EXACT, CLOSE, DIFFERENT), the prior, the link threshold in bits."""

    m: Mapping[Field, tuple[float, float, float]]
    u: Mapping[Field, tuple[float, float, float]]
    prior: float  # probability that two records drawn at random are one person
    threshold: float  # link when the match weight (bits) reaches it
    recipes: tuple[str, ...] = ()
    _decisions: dict[tuple[frozenset[str], frozenset[Field]], bool] = field(
        default_factory=dict, init=False, compare=False, repr=False)
    """``decides``' answers so far: a pair's decision depends only on its agreeing recipes and
    the fields both records have, and a stream of records repeats few such combinations."""

    def weight(self, pat: Pattern) -> float:
        """log2 of the Bayes factor: how much more likely the pattern is for one person than for two."""
        total = 0.0
        for f, level in zip(FIELDS, pat, strict=True):
            if level is not None:
                total += math.log2(max(self.m[f][level], _FLOOR) / max(self.u[f][level], _FLOOR))
        return total

    def links(self, pat: Pattern) -> bool:
        return self.weight(pat) >= self.threshold

    def decides(self, agreeing: frozenset[str], observed: frozenset[Field],
                recipes: tuple[Recipe, ...] = RECIPES) -> bool:
        """``links(pattern(agreeing, observed, recipes))``, remembered for the default recipes."""
        if recipes is not RECIPES:
            return self.links(pattern(agreeing, observed, recipes))
        key = (agreeing, observed)
        decided = self._decisions.get(key)
        if decided is None:
            if len(self._decisions) >= _MAX_DECISIONS:
                self._decisions.clear()
            decided = self._decisions[key] = self.links(pattern(agreeing, observed, recipes))
        return decided

    def to_json(self) -> dict[str, Any]:
        return {
            "m": {f.value: list(v) for f, v in self.m.items()},
            "u": {f.value: list(v) for f, v in self.u.items()},
            "prior": self.prior,
            "threshold": self.threshold,
            "recipes": list(self.recipes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Model:
        def levels(raw: Mapping[str, list[float]]) -> dict[Field, tuple[float, float, float]]:
            return {Field(k): (float(v[0]), float(v[1]), float(v[2])) for k, v in raw.items()}

        return cls(levels(data["m"]), levels(data["u"]), float(data["prior"]), float(data["threshold"]),
                   tuple(data.get("recipes", ())))


def _levels(exact: float, close: float) -> tuple[float, float, float]:
    return (exact, close, 1.0 - exact - close)


# Before the first fit on our own records: what ``estimate`` found on Febrl2 (4,711 admitted
# records, synthetic; fitted 2026-12-05 by benchmarks/linkage_offline.py). The rebuild job refits
# on the real records; its prior, and so the threshold, follow the number of records.
DEFAULT_MODEL = Model(
    m={
        Field.GIVEN: _levels(0.701, 0.0869),
        Field.FAMILY: _levels(0.626, 0.191),
        Field.DOB: _levels(0.921, 0.0132),
        Field.SSN: _levels(0.871, 0.0643),
    },
    u={
        Field.GIVEN: _levels(0.00444, 0.00159),
        Field.FAMILY: _levels(0.00362, 0.00105),
        Field.DOB: _levels(1.77e-05, 0.00363),
        Field.SSN: _levels(1.67e-07, 0.00013),
    },
    prior=0.000153,
    threshold=19.3,
    recipes=tuple(f"{r.id}@{r.version}" for r in RECIPES),
)


# --- estimation -------------------------------------------------------------------------------

Evidence = Mapping[tuple[frozenset[str], frozenset[Field]], int]
"""Candidate pairs counted by (recipes they agree on, fields both records have)."""

_Raw = tuple[Level | None, ...]


def _satisfies(raw: _Raw, field: Field, level: Level) -> bool:
    actual = raw[FIELDS.index(field)]
    return actual is not None and actual <= level


def _observe(raw: _Raw, recipes: tuple[Recipe, ...]) -> Pattern | None:
    """What tokens show of a pair whose fields agree as ``raw``: its pattern, or None (no candidate)."""
    agreeing = [r.id for r in recipes if all(_satisfies(raw, f, level) for f, level in r.certifies)]
    if not agreeing:
        return None
    observed = frozenset(f for f, level in zip(FIELDS, raw, strict=True) if level is not None)
    return pattern(agreeing, observed, recipes)


def _pairs_by_observed(presence: Mapping[frozenset[Field], int]) -> dict[frozenset[Field], float]:
    """All record pairs, counted by the fields both records have."""
    out: dict[frozenset[Field], float] = defaultdict(float)
    sets = sorted(presence.items(), key=lambda kv: sorted(kv[0]))
    for i, (a, na) in enumerate(sets):
        out[a] += na * (na - 1) / 2
        for b, nb in sets[i + 1 :]:
            out[a & b] += na * nb
    return out


def estimate(
    evidence: Evidence,
    presence: Mapping[frozenset[Field], int],
    recipes: tuple[Recipe, ...] = RECIPES,
    *,
    min_posterior: float = 0.99,
    max_iterations: int = 10_000,
    tolerance: float = 1e-7,
) -> Model:
    """Fit m, u and the prior by EM from what tokens show, without labels.

    ``evidence``: candidate pairs counted by (agreeing recipe ids, fields both records have);
    ``presence``: records counted by the fields they have. Both are aggregates the service can
    read with SQL. Every pair of records is in the likelihood: a candidate shows its pattern,
    any other pair only that no recipe agrees. Each is spread over the field agreements that
    would show so (the hidden "raw" pattern) and over match / non-match, the two classes
    drawing each field's level independently (Fellegi-Sunter). So u comes from how rarely
    different people's tokens collide and m from the candidates, in one likelihood that EM
    never decreases. Half a pair is added to every level of every field and class.
    """
    observations: dict[tuple[Pattern | None, frozenset[Field]], float] = defaultdict(float)
    candidates_by_observed: dict[frozenset[Field], float] = defaultdict(float)
    for (agreeing, observed), pairs in evidence.items():
        observations[(pattern(agreeing, observed, recipes), observed)] += pairs
        candidates_by_observed[observed] += pairs
    all_pairs = 0.0
    for observed, total in _pairs_by_observed(presence).items():
        all_pairs += total
        observations[(None, observed)] += max(total - candidates_by_observed[observed], 0.0)
    # The raw patterns behind each observation (3 levels for each field both have).
    behind: dict[tuple[Pattern | None, frozenset[Field]], list[_Raw]] = defaultdict(list)
    for observed in {o for _p, o in observations}:
        choices = [tuple(Level) if f in observed else (None,) for f in FIELDS]
        for raw in itertools.product(*choices):
            behind[(_observe(raw, recipes), observed)].append(raw)

    m = dict.fromkeys(FIELDS, (0.9, 0.05, 0.05))
    u = dict.fromkeys(FIELDS, (0.01, 0.01, 0.98))
    prior = 1.0 / max(all_pairs, 2.0)
    for _ in range(max_iterations):
        counts = {cls: {f: [0.5, 0.5, 0.5] for f in FIELDS} for cls in ("m", "u")}
        matches = 0.0
        for key, count in observations.items():
            if count <= 0:
                continue
            raws = behind.get(key, [])
            joint = []
            for raw in raws:
                pm, pu = prior, 1.0 - prior
                for f, level in zip(FIELDS, raw, strict=True):
                    if level is not None:
                        pm *= m[f][level]
                        pu *= u[f][level]
                joint.append((pm, pu))
            total = sum(pm + pu for pm, pu in joint)
            if total <= 0:
                continue
            for raw, (pm, pu) in zip(raws, joint, strict=True):
                wm, wu = count * pm / total, count * pu / total
                matches += wm
                for f, level in zip(FIELDS, raw, strict=True):
                    if level is not None:
                        counts["m"][f][level] += wm
                        counts["u"][f][level] += wu
        new_m = {f: _normalized(counts["m"][f]) for f in FIELDS}
        new_u = {f: _normalized(counts["u"][f]) for f in FIELDS}
        new_prior = min(max(matches / max(all_pairs, 1.0), 1e-12), 0.5)
        change = max(
            abs(math.log(new / old))
            for new_p, old_p in ((new_m, m), (new_u, u))
            for f in FIELDS
            for new, old in zip(new_p[f], old_p[f], strict=True)
        )
        m, u, prior = new_m, new_u, new_prior
        if change < tolerance:  # EM creeps: u of the rarest agreements takes thousands of steps
            break
    threshold = math.log2((1 - prior) / prior) + math.log2(min_posterior / (1 - min_posterior))
    return Model(m, u, prior, threshold, tuple(f"{r.id}@{r.version}" for r in recipes))


def _normalized(counts: list[float]) -> tuple[float, float, float]:
    total = sum(counts)
    return (counts[0] / total, counts[1] / total, counts[2] / total)


# --- incremental assignment ---------------------------------------------------------------------


class Candidate(NamedTuple):
    """An existing record sharing at least one token with the new one (one row per record).
    A named tuple: the person step makes one for every record a new record shares a token with,
    and a frozen dataclass costs several times as much to make."""

    record_id: str
    person_id: str
    agreeing: frozenset[str]  # recipe ids of the shared tokens
    fields: frozenset[Field]  # fields the existing record has


@dataclass(frozen=True, slots=True)
class Assignment:
    """The new record's person: ``person_id`` (None: a new person) absorbing ``merged`` persons."""

    person_id: str | None
    merged: tuple[str, ...] = ()
    linked_records: tuple[str, ...] = ()


def assign(
    fields: frozenset[Field], candidates: Iterable[Candidate], model: Model, recipes: tuple[Recipe, ...] = RECIPES
) -> Assignment:
    """The new record joins every person it links to; two or more are merged into the oldest.

    Person ids must sort by age (time-ordered UUIDs): the survivor of a merge is the smallest,
    so persons stay stable whatever order records arrive in.
    """
    linked = [c for c in candidates if model.decides(c.agreeing, fields & c.fields, recipes)]
    persons = sorted({c.person_id for c in linked})
    if not persons:
        return Assignment(None)
    return Assignment(persons[0], tuple(persons[1:]), tuple(sorted(c.record_id for c in linked)))


@dataclass
class Linker:
    """In-memory state of the incremental rule (research, tests): what the service keeps in SQL.

    Tables it stands for: tokens (recipe, token) -> record ids, with an index on (recipe, token);
    record -> (person, fields); person merges (absorbed -> survivor).
    """

    model: Model
    recipes: tuple[Recipe, ...] = RECIPES
    index: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    record_fields: dict[str, frozenset[Field]] = field(default_factory=dict)
    record_person: dict[str, str] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)
    _next: int = 0

    def person_of(self, record_id: str) -> str:
        person = self.record_person[record_id]
        while person in self.merged_into:
            person = self.merged_into[person]
        return person

    def add(self, record_id: str, tokens: Iterable[LinkageToken]) -> Assignment:
        toks = list(tokens)
        agreeing: dict[str, set[str]] = defaultdict(set)
        for t in toks:
            for other in self.index.get((t.recipe, t.token), ()):
                agreeing[other].add(t.recipe)
        fields = fields_present({t.recipe for t in toks}, self.recipes)
        candidates = [
            Candidate(other, self.person_of(other), frozenset(rids), self.record_fields[other])
            for other, rids in agreeing.items()
        ]
        decision = assign(fields, candidates, self.model, self.recipes)
        if decision.person_id is None:
            self._next += 1
            person = f"p{self._next:012d}"
        else:
            person = decision.person_id
            for absorbed in decision.merged:
                self.merged_into[absorbed] = person
        self.record_person[record_id] = person
        self.record_fields[record_id] = fields
        for t in toks:
            self.index.setdefault((t.recipe, t.token), []).append(record_id)
        return decision
