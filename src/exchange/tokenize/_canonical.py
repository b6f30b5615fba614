"""Canonicalization + HMAC: the pure core of tokenization (rules of the original ADR 0001).

Compatible with the original Go system: records tokenized there link to records tokenized
here under the same key, so every rule below is Go's, not Python's where the two differ
(white space, lower-casing, digits). See docs/decisions/0001-tokenization-canonicalization.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = ("InvalidIdentifiers", "PatientIdentifiers", "canonical_dob", "canonical_string", "patient_token")

# Go's unicode.IsSpace: Latin-1 '\t' '\n' '\v' '\f' '\r' ' ' U+0085 U+00A0, then the
# White_Space property. Python's str.split/isspace also splits on U+001C-U+001F; Go does not.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_GO_FIELDS = re.compile(f"[{_GO_SPACE}]+")
# time.Parse("2006-01-02", …) takes ASCII digits only, exactly 4-2-2 of them.
_DOB = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Where Python's lower-casing of a one-character string is not Go's simple case mapping.
# Checked for every code point against Go itself (tests/unit/tokenize/test_go_compatibility.py).
_GO_LOWER_EXCEPTIONS = {"\u0130": "i"}  # Python: "i̇" (full mapping, two code points)


class InvalidIdentifiers(ValueError):
    """Identifiers that cannot be tokenized; ``field`` names which (never its value)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class PatientIdentifiers:
    given_name: str
    family_name: str
    dob: str
    ssn: str | None = None

    def __repr__(self) -> str:  # identifiers must never reach a log line through repr
        return "PatientIdentifiers(<redacted>)"


def _go_fields(value: str) -> list[str]:
    """``strings.Fields``: split on runs of Go white space, dropping empty fields (so trimmed)."""
    return [field for field in _GO_FIELDS.split(value) if field]


def _go_lower(value: str) -> str:
    """``strings.ToLower``: each code point through its simple lower-case mapping.

    ``str.lower`` applies the full mapping (U+0130 becomes two code points) and the
    context-dependent final sigma (Σ at a word's end becomes ς); Go does neither.
    """
    if "\u0130" not in value and "\u03a3" not in value:
        return value.lower()  # without those two, the whole-string and per-code-point results agree
    return "".join(_GO_LOWER_EXCEPTIONS.get(ch) or ch.lower() for ch in value)


def _name(value: str, field: str) -> str:
    canonical = _go_lower(" ".join(_go_fields(value)))
    if not canonical:
        raise InvalidIdentifiers(field, "must not be empty")
    return canonical


def canonical_dob(value: str) -> str:
    """The dob as the seed token sees it (``YYYY-MM-DD``); raises ``InvalidIdentifiers``."""
    return _dob(value)


def _dob(value: str) -> str:
    # Surrounding white space is tolerated (tokens of the dates Go accepts are unchanged).
    fields = _go_fields(value)
    match = _DOB.fullmatch(fields[0]) if len(fields) == 1 else None
    if match is None:
        raise InvalidIdentifiers("dob", "must be a date in YYYY-MM-DD form")
    year, month, day = (int(part) for part in match.groups())
    # Go's proleptic Gregorian calendar, year 0000 included (datetime.date starts at year 1).
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= month <= 12 or not 1 <= day <= (29 if month == 2 and leap else _DAYS_IN_MONTH[month - 1]):
        raise InvalidIdentifiers("dob", "must be a valid calendar date")
    return f"{year:04d}-{month:02d}-{day:02d}"


def _ssn(value: str | None) -> str:
    return "".join(ch for ch in value if "0" <= ch <= "9") if value else ""


def canonical_string(ids: PatientIdentifiers) -> str:
    """The HMAC message: ``given_name=<g>|family_name=<f>|dob=<d>|ssn=<s>`` after the rules."""
    return (
        f"given_name={_name(ids.given_name, 'given_name')}"
        f"|family_name={_name(ids.family_name, 'family_name')}"
        f"|dob={_dob(ids.dob)}"
        f"|ssn={_ssn(ids.ssn)}"
    )


def patient_token(key: bytes, ids: PatientIdentifiers) -> str:
    """Hex HMAC-SHA256 of the canonical string: deterministic per key."""
    return hmac.new(key, canonical_string(ids).encode("utf-8"), hashlib.sha256).hexdigest()
