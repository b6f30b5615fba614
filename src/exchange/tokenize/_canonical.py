"""Canonicalization + HMAC: the pure core of tokenization (rules of the original ADR 0001).

Compatible with the original system: records tokenized there link to records
tokenized here under the same key. See docs/decisions/0001-tokenization-canonicalization.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = ("InvalidIdentifiers", "PatientIdentifiers", "canonical_string", "patient_token")

_DOB = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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


def _name(value: str, field: str) -> str:
    # Trim, collapse every run of whitespace to one space, lower-case.
    canonical = " ".join(value.split()).lower()
    if not canonical:
        raise InvalidIdentifiers(field, "must not be empty")
    return canonical


def _dob(value: str) -> str:
    text = value.strip()
    if not _DOB.match(text):
        raise InvalidIdentifiers("dob", "must be a date in YYYY-MM-DD form")
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise InvalidIdentifiers("dob", "must be a valid calendar date") from None


def _ssn(value: str | None) -> str:
    return "".join(ch for ch in value if "0" <= ch <= "9") if value else ""


def canonical_string(ids: PatientIdentifiers) -> str:
    return (
        f"given_name={_name(ids.given_name, 'given_name')}"
        f"|family_name={_name(ids.family_name, 'family_name')}"
        f"|dob={_dob(ids.dob)}"
        f"|ssn={_ssn(ids.ssn)}"
    )


def patient_token(key: bytes, ids: PatientIdentifiers) -> str:
    """Hex HMAC-SHA256 of the canonical string: deterministic per key."""
    return hmac.new(key, canonical_string(ids).encode("utf-8"), hashlib.sha256).hexdigest()
