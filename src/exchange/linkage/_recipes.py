"""Linkage token recipes: which normalized fields, encoded how, go into each keyed token.

A name always goes with another field, so no stored token stands for a name alone (whose
frequency would betray common surnames); only the SSN, near-unique and uniform, stands alone.
Two records agree on a recipe when they share one of its tokens; the parts a recipe is made
of tell which field agreed, and how closely (``certifies``): agreement on "given exact + dob
exact" proves both fields equal. Person resolution (``_resolution.py``) reads field agreement
back from the agreeing recipes.

Tokens: hex HMAC-SHA256 under a key derived per key id, recipe and recipe version, so the same
input under two recipes, two recipe versions or two keys never gives the same token.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from exchange.linkage._normalize import LinkageFields, PatientIdentifiers, linkage_fields, phonetic

__all__ = (
    "FIELDS",
    "RECIPES",
    "Field",
    "KeyTokens",
    "Level",
    "LinkageToken",
    "Part",
    "Recipe",
    "TOKEN_BYTES",
    "key_tokens",
    "linkage_tokens",
    "present",
    "parts",
    "recipe",
    "recipe_tokens",
)


class Field(enum.StrEnum):
    GIVEN = "given"
    FAMILY = "family"
    DOB = "dob"
    SSN = "ssn"


FIELDS: tuple[Field, ...] = tuple(Field)


class Level(enum.IntEnum):
    """How closely a field agrees, best first. DIFFERENT: both have it and no token shows agreement."""

    EXACT = 0
    CLOSE = 1  # names: NYSIIS or first four letters; dob: two of year, month, day; ssn: a third hidden
    DIFFERENT = 2


@dataclass(frozen=True, slots=True)
class Part:
    """One field (or two) encoded one way: a set of values, empty when a field is missing."""

    name: str
    encode: Callable[[LinkageFields], frozenset[str]] = field(compare=False)
    certifies: tuple[tuple[Field, Level], ...]


@dataclass(frozen=True, slots=True)
class Recipe:
    """A versioned combination of parts; its tokens are the product of the parts' values."""

    id: str
    version: int
    parts: tuple[Part, ...]
    certifies: tuple[tuple[Field, Level], ...] = field(init=False, compare=False, repr=False)
    """What agreement on this recipe proves, per field: its parts' together (computed once:
    the person step reads it for every candidate pair)."""

    def __post_init__(self) -> None:
        certified = tuple(dict.fromkeys(c for part in self.parts for c in part.certifies))
        object.__setattr__(self, "certifies", certified)


TOKEN_BYTES = 16


def present(fields: LinkageFields) -> frozenset[Field]:
    """The fields a record has (the ones a recipe can use)."""
    values = {Field.GIVEN: fields.given, Field.FAMILY: fields.family, Field.DOB: fields.dob, Field.SSN: fields.ssn}
    return frozenset(f for f, v in values.items() if v)


class KeyTokens(NamedTuple):
    """A record's linkage tokens under one key: recipe ids and digests, position for position.
    One block a key, not an object a token: a record has dozens, and the normalizer stores them
    as one row a key (``record_linkage``)."""

    key_id: str
    recipes: tuple[str, ...]
    digests: tuple[bytes, ...]

    def __repr__(self) -> str:  # tokens are not secrets, but logs have no use for them
        return f"KeyTokens({self.key_id!r}, {len(self.digests)} tokens)"


@dataclass(frozen=True, slots=True)
class LinkageToken:
    recipe: str
    token: str

    def __repr__(self) -> str:
        return f"LinkageToken({self.recipe!r}, <token>)"


def _one(value: str) -> frozenset[str]:
    return frozenset((value,)) if value else frozenset()


def _dob_partial(dob: str) -> frozenset[str]:
    """Two of year, month and day, and the date with day and month swapped (read the wrong way round)."""
    if not dob:
        return frozenset()
    year, month, day = dob[:4], dob[4:6], dob[6:]
    low, high = sorted((month, day))
    return frozenset((f"ym{year}{month}", f"yd{year}{day}", f"md{month}{day}", f"ys{year}{low}{high}"))


def _deletions(digits: str) -> frozenset[str]:
    """Each way of dropping one digit: two numbers one substitution or one adjacent swap apart share one."""
    return frozenset(digits[:i] + digits[i + 1 :] for i in range(len(digits))) if digits else frozenset()


def _masked_thirds(digits: str) -> frozenset[str]:
    """The number with each third hidden: after one typo (or a swap inside a third) the one hiding it agrees.

    Three tokens instead of one per digit (``_deletions``); a swap across two thirds is missed.
    """
    if not digits:
        return frozenset()
    a, b = len(digits) // 3, 2 * len(digits) // 3
    n = len(digits)
    return frozenset(("_" * a + digits[a:], digits[:a] + "_" * (b - a) + digits[b:], digits[:b] + "_" * (n - b)))


def _unordered(first: Iterable[str], second: Iterable[str]) -> frozenset[str]:
    """Each (given code, family code) with the two in sorted order: swapped names agree too."""
    return frozenset("\x1f".join(sorted((a, b))) for a in first for b in second)


@functools.lru_cache(maxsize=16384)
def _close_name_codes(name: str) -> frozenset[str]:
    """NYSIIS (spelling variants that sound alike) and the first four letters (typos further on).

    Either shared makes two names close. Febrl's corruptions are typos, where the prefix does
    better; real records also hold variants by ear, where a phonetic code does (ADR 0006).
    """
    return frozenset((f"n:{phonetic(name)}", f"p:{name[:4]}")) if name else frozenset()


G, F, D, S = Field.GIVEN, Field.FAMILY, Field.DOB, Field.SSN
EXACT, CLOSE = Level.EXACT, Level.CLOSE


def parts(close_name: Callable[[str], frozenset[str]] = _close_name_codes) -> dict[str, Part]:
    """The parts recipes are made of (``close_name``, a name's close codes, varies for research only)."""
    return {
        "given": Part("given", lambda f: _one(f.given), ((G, EXACT),)),
        "given~": Part("given~", lambda f: close_name(f.given) if f.given else frozenset(), ((G, CLOSE),)),
        "family": Part("family", lambda f: _one(f.family), ((F, EXACT),)),
        "family~": Part("family~", lambda f: close_name(f.family) if f.family else frozenset(), ((F, CLOSE),)),
        # Given and family names in either order: records that swapped the two still agree.
        "names": Part("names", lambda f: _unordered(_one(f.given), _one(f.family)), ((G, EXACT), (F, EXACT))),
        "names~": Part(
            "names~",
            lambda f: _unordered(close_name(f.given), close_name(f.family)) if f.given and f.family else frozenset(),
            ((G, CLOSE), (F, CLOSE)),
        ),
        "dob": Part("dob", lambda f: _one(f.dob), ((D, EXACT),)),
        "dob~": Part("dob~", lambda f: _dob_partial(f.dob), ((D, CLOSE),)),
        "ssn": Part("ssn", lambda f: _one(f.ssn), ((S, EXACT),)),
        "ssn~": Part("ssn~", lambda f: _masked_thirds(f.ssn), ((S, CLOSE),)),
        "ssn~del": Part("ssn~del", lambda f: _deletions(f.ssn), ((S, CLOSE),)),  # measured, not kept
    }


def recipe(*names: str, version: int = 1, catalog: dict[str, Part] | None = None) -> Recipe:
    """The recipe of these parts, its id their names joined by "+"."""
    chosen = catalog or parts()
    return Recipe("+".join(names), version, tuple(chosen[name] for name in names))


# Exact pairs: when two or more fields agree exactly, each is known to (dob + ssn is known from
# "ssn~ + dob", which the exact SSN satisfies too). Names in either order beside the dob. The SSN
# alone, exact and with a third hidden: near-unique and uniform, so its frequency betrays nothing,
# and it measures how rarely different people share one (placeholders shared by many weigh
# little). Close pairs: variants and typos in names (NYSIIS or first four letters), in the dob (two
# of year, month, day, or day and month swapped) and in the SSN, each beside another field that
# must agree too.
RECIPES: tuple[Recipe, ...] = (
    recipe("given", "family"),
    recipe("given", "dob"),
    recipe("family", "dob"),
    recipe("given", "ssn"),
    recipe("family", "ssn"),
    recipe("names", "dob"),
    recipe("ssn"),
    recipe("ssn~"),
    recipe("ssn~", "dob"),
    recipe("ssn", "dob~"),
    recipe("given~", "family~"),
    recipe("given~", "dob~"),
    recipe("family~", "dob~"),
)


@functools.lru_cache(maxsize=512)
def _message_key(key: bytes, key_id: str, rec_id: str, version: int) -> bytes:
    """Per key id, recipe and version: domain separation, so tokens of two recipes never collide."""
    label = f"exchange.linkage\x1f{key_id}\x1f{rec_id}\x1f{version}".encode()
    return hmac.digest(key, label, "sha256")


def _pads(message_key: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256 under ``message_key`` with its two padded-key blocks hashed once (RFC 2104):
    each token then costs two hash copies instead of a fresh HMAC (half the time)."""
    block = message_key.ljust(64, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in block)), hashlib.sha256(bytes(b ^ 0x5C for b in block)))


_Plan = tuple[tuple[str, tuple[Part, ...], Any, Any], ...]
_PLANS: dict[tuple[bytes, str, int], tuple[tuple[Recipe, ...], _Plan]] = {}


def _plan(key: bytes, key_id: str, recipes: tuple[Recipe, ...]) -> _Plan:
    """What a record's tokens under one key need besides its fields, derived once per key:
    each recipe's id, parts and padded-key hash states. Found by the recipes' identity: hashing
    the recipe dataclasses for an ``lru_cache`` key cost more than the lookup saves."""
    found = _PLANS.get((key, key_id, id(recipes)))
    if found is not None and found[0] is recipes:
        return found[1]
    plan = tuple((rec.id, rec.parts, *_pads(_message_key(key, key_id, rec.id, rec.version))) for rec in recipes)
    if len(_PLANS) >= 64:
        _PLANS.clear()
    _PLANS[(key, key_id, id(recipes))] = (recipes, plan)
    return plan


def recipe_tokens(rec: Recipe, fields: LinkageFields,
                  encoded: dict[str, list[str]] | None = None) -> frozenset[str]:
    """The plain values a recipe would key (never stored). ``encoded`` memoizes each part's values
    across the recipes of one record (several recipes share a part)."""
    memo = {} if encoded is None else encoded
    columns = []
    for part in rec.parts:
        if part.name not in memo:
            memo[part.name] = sorted(part.encode(fields))
        columns.append(memo[part.name])
    values: Iterable[tuple[str, ...]] = itertools.product(*columns)
    return frozenset("\x1e".join(combo) for combo in values)


def key_tokens(
    key_id: str, key: bytes, identifiers: PatientIdentifiers | LinkageFields, recipes: tuple[Recipe, ...] = RECIPES
) -> KeyTokens:
    """Every recipe's tokens for one record under one key; a recipe whose fields are missing
    yields none. A digest is the HMAC-SHA256 truncated to ``TOKEN_BYTES``: a chance collision
    between two tokens stays ~2^-128, and the lookup index is half as wide. Takes the normalized
    fields too, so a caller tokenizing under several keys normalizes once.

    The values are ``recipe_tokens``'s (a test holds the two equal), built here without the
    generic product: this runs for every record the normalizer writes."""
    fields = identifiers if isinstance(identifiers, LinkageFields) else linkage_fields(identifiers)
    encoded: dict[str, list[bytes]] = {}
    recipe_ids: list[str] = []
    digests: list[bytes] = []
    for rec_id, rec_parts, inner_pad, outer_pad in _plan(key, key_id, recipes):
        messages: list[bytes] = []
        for n, part in enumerate(rec_parts):
            values = encoded.get(part.name)
            if values is None:
                # Sorted: the same record gives its tokens in the same order in every process.
                values = encoded[part.name] = sorted(v.encode() for v in part.encode(fields))
            messages = values if n == 0 else [m + b"\x1e" + v for m in messages for v in values]
        for message in messages:
            inner = inner_pad.copy()
            inner.update(message)
            outer = outer_pad.copy()
            outer.update(inner.digest())
            digests.append(outer.digest()[:TOKEN_BYTES])
        recipe_ids.extend([rec_id] * len(messages))
    return KeyTokens(key_id, tuple(recipe_ids), tuple(digests))


def linkage_tokens(
    key_id: str, key: bytes, identifiers: PatientIdentifiers, recipes: tuple[Recipe, ...] = RECIPES
) -> list[LinkageToken]:
    """``key_tokens`` as hex tokens, sorted (deterministic: callers can compare lists)."""
    block = key_tokens(key_id, key, identifiers, recipes)
    return sorted((LinkageToken(rid, digest.hex()) for rid, digest in zip(block.recipes, block.digests, strict=True)),
                  key=lambda t: (t.recipe, t.token))
