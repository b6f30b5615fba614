"""Identifier normalization for linkage: richer than the seed token's rules, on purpose.

The seed ``patient_token`` keeps the original system's rules byte for byte (ADR 0001). Linkage
tokens are ours, so they can forgive what real records get wrong: accents and Unicode forms
(NFKD, marks dropped, case folded), punctuation and spacing inside names ("O'Brien", "Kerr-
Sullivan", "Mary Ann" against "maryann"), digits in any script, placeholder SSNs.
"""

from __future__ import annotations

import datetime as dt
import functools
import unicodedata
from dataclasses import dataclass

import jellyfish

__all__ = ("LinkageFields", "PatientIdentifiers", "linkage_fields", "phonetic")

# SSNs that stand for "unknown" in real feeds: equal on thousands of unrelated people.
_PLACEHOLDER_SSNS = frozenset({"123456789", "987654321", "012345678"})


@dataclass(frozen=True, slots=True)
class PatientIdentifiers:
    """The ingest contract's patient fields (v1 first/last names map onto given/family)."""

    given_name: str
    family_name: str
    dob: dt.date
    ssn: str | None = None

    def __repr__(self) -> str:  # identifiers must never reach a log line through repr
        return "PatientIdentifiers(<redacted>)"


@dataclass(frozen=True, slots=True)
class LinkageFields:
    """Normalized fields; an empty string means missing (no recipe that needs it yields a token)."""

    given: str
    family: str
    dob: str  # YYYYMMDD, or "" when missing
    ssn: str

    def __repr__(self) -> str:
        return "LinkageFields(<redacted>)"


@functools.lru_cache(maxsize=16384)
def _name(value: str) -> str:
    # Cached: names repeat across records far more than they vary, and Unicode decomposition is
    # most of a record's normalization. The cache is process memory, like the records in flight.
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(ch for ch in decomposed.casefold() if ch.isalpha() and not unicodedata.combining(ch))


def _ssn(value: str | None) -> str:
    if not value:
        return ""
    digits = "".join(str(unicodedata.decimal(ch)) for ch in value if unicodedata.decimal(ch, None) is not None)
    if len(set(digits)) <= 1 or digits in _PLACEHOLDER_SSNS:
        return ""
    return digits


def linkage_fields(ids: PatientIdentifiers) -> LinkageFields:
    """Names: letters only (any script), unaccented, case-folded. SSN: its digits, placeholders dropped."""
    return LinkageFields(_name(ids.given_name), _name(ids.family_name), ids.dob.strftime("%Y%m%d"), _ssn(ids.ssn))


def phonetic(name: str) -> str:
    """NYSIIS of a normalized name, or the name itself where NYSIIS has nothing to say.

    NYSIIS keeps only letters it knows; for names in other scripts it can return ``""`` or the
    name unchanged, and an empty code must never make two names agree.
    """
    code = jellyfish.nysiis(name) if name else ""
    return code if code.isascii() and code else name
