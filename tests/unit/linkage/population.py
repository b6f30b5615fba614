"""A synthetic population for linkage tests: people, some recorded twice with typical errors.

Names come from short lists, so surnames and dobs are shared by many unrelated people: the
situation that must never link on its own.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass

from exchange.linkage import (
    Field,
    LinkageToken,
    Model,
    PatientIdentifiers,
    estimate,
    fields_present,
    linkage_tokens,
)

KEY = b"linkage-unit-test-key-0123456789abcdef"
KEY_ID = "test-1"
GIVEN = ("james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "william", "elizabeth",
         "david", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah", "charles", "karen")
FAMILY = ("smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez",
          "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor", "moore", "jackson", "martin",
          "lee", "perez", "thompson", "white", "harris", "sanchez", "clark", "ramirez", "lewis", "robinson")


@dataclass(frozen=True)
class Person:
    given: str
    family: str
    dob: dt.date
    ssn: str | None


def _typo(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text))
    kind = rng.randrange(3)
    if kind == 0 and len(text) > 3:
        return text[:i] + text[i + 1 :]
    if kind == 1:
        return text[:i] + rng.choice("aeioubcdklmnrst") + text[i + 1 :]
    return text[:i] + text[i] + text[i:]


def people(n: int, seed: int) -> list[Person]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        dob = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(365 * 60))
        ssn = None if rng.random() < 0.2 else f"{rng.randrange(10**9):09d}"
        out.append(Person(rng.choice(GIVEN), rng.choice(FAMILY), dob, ssn))
    return out


def recorded(person: Person, rng: random.Random) -> PatientIdentifiers:
    """Another record of the same person: usually one error, in one field."""
    given, family, dob, ssn = person.given, person.family, person.dob, person.ssn
    error = rng.randrange(6)
    if error == 0:
        given = _typo(rng, given)
    elif error == 1:
        family = _typo(rng, family)
    elif error == 2 and dob.day <= 28:
        dob = dob.replace(day=dob.day % 28 + 1)
    elif error == 3 and ssn is not None:
        ssn = _typo(rng, ssn).ljust(9, "0")[:9]
    elif error == 4:
        ssn = None
    return PatientIdentifiers(given.title(), family.upper(), dob, ssn)


def records(n: int, seed: int, duplicated: float = 0.4) -> list[tuple[str, int, PatientIdentifiers]]:
    """(record id, person index, identifiers); ``duplicated`` of the people have a second record."""
    rng = random.Random(seed + 1)
    out = []
    for i, person in enumerate(people(n, seed)):
        out.append((f"r{i}a", i, PatientIdentifiers(person.given, person.family, person.dob, person.ssn)))
        if rng.random() < duplicated:
            out.append((f"r{i}b", i, recorded(person, rng)))
    return out


def tokens_of(rows: list[tuple[str, int, PatientIdentifiers]]) -> dict[str, list[LinkageToken]]:
    return {rid: linkage_tokens(KEY_ID, KEY, ids) for rid, _p, ids in rows}


def fitted(tokens: dict[str, list[LinkageToken]]) -> Model:
    """The model EM fits on these records: candidates counted as the service would count them."""
    index: dict[tuple[str, str], list[str]] = {}
    for rid, toks in tokens.items():
        for t in toks:
            index.setdefault((t.recipe, t.token), []).append(rid)
    agreeing: dict[tuple[str, str], set[str]] = {}
    for (recipe_id, _t), rids in index.items():
        for a in rids:
            for b in rids:
                if a < b:
                    agreeing.setdefault((a, b), set()).add(recipe_id)
    present = {rid: fields_present({t.recipe for t in toks}) for rid, toks in tokens.items()}
    evidence: Counter[tuple[frozenset[str], frozenset[Field]]] = Counter(
        (frozenset(rids), present[a] & present[b]) for (a, b), rids in agreeing.items()
    )
    return estimate(evidence, Counter(present.values()))
