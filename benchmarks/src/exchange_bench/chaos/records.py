"""The chaos run's records: each carries PHI canaries of all 18 HIPAA identifier classes
(``phi-canaries.json``, a copy of the test suite's list) in its identifier fields and payload,
and the patterns that find any of them, or any record's own identifiers, in an output.

The identifier fields hold the canaries with a per-record part (a prefix on the names, the
date of birth moved by days, the SSN's last four digits): one patient named ten thousand times
would make the person step compare every record with every other, which is not the load a
real feed puts on it. A prefix, not a suffix: the close name tokens (NYSIIS, the first four
letters) read a name's start, and with a suffix every record shared them -- each new record then
had hundreds of stored records as candidates, far more than a real population gives (one name's
sound in one month of birth). The patterns match the canary stem, so every record's value is found.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import cache
from importlib import resources
from typing import Any

__all__ = ("CANARY_CLASSES", "canaries", "leaks", "record_body", "record_key")

_EPOCH = dt.date(1911, 3, 1)  # the canary date of birth; records move from it by days
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@cache
def _canary_file() -> dict[str, Any]:
    text = resources.files("exchange_bench.chaos").joinpath("phi-canaries.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def canaries() -> dict[str, str]:
    """Field name -> canary value, every class flattened."""
    flat: dict[str, str] = {}
    for group in _canary_file()["canaries"].values():
        flat.update(group)
    return flat


CANARY_CLASSES: tuple[str, ...] = tuple(_canary_file()["canaries"])


def _suffix(n: int) -> str:
    """``n`` in letters (names hold no digits): a, b, ..., z, ba, bb, ..."""
    out = _LETTERS[n % 26]
    while n >= 26:
        n //= 26
        out = _LETTERS[n % 26] + out
    return out


def _prefixed(n: int, canary: str) -> str:
    return (_suffix(n) + canary.lower()).capitalize()


def record_key(label: str, n: int) -> str:
    return f"{label}-{n}"


def record_body(source: str, n: int) -> bytes:
    """Record ``n`` of the run, a v2 ingest body."""
    c = canaries()
    dob = _EPOCH + dt.timedelta(days=n % 10_000)
    patient = {"given_name": _prefixed(n, c["given_name"]), "family_name": _prefixed(n // 7, c["family_name"]),
               "dob": dob.isoformat(), "ssn": c["ssn"][:7] + f"{n % 10_000:04d}"}
    payload = {**c, "notes": f"seen at {c['street']}", "n": n}
    return json.dumps({"source": source, "record_kind": "encounter", "schema_hint": "partnerB.v1",
                       "patient": patient, "payload": payload}).encode()


def _patterns() -> dict[str, re.Pattern[str]]:
    c = canaries()
    found: dict[str, re.Pattern[str]] = {}
    for name, value in c.items():
        if name in ("given_name", "family_name"):
            found[name] = re.compile(re.escape(value), re.IGNORECASE)  # any record's, in any case
        elif name == "ssn":  # the canary and every record's: 987-65-dddd, with or without dashes
            area, group = value.split("-")[:2]
            found[name] = re.compile(rf"(?<![0-9]){area}-?{group}-?[0-9]{{4}}(?![0-9])")
        elif name == "dob":  # every record's: 1911-03-01 and the 10,000 days after it (to 1938)
            found[name] = re.compile(r"(?<![0-9])19(?:1[1-9]|2[0-9]|3[0-8])-[01][0-9]-[0-3][0-9](?![0-9])")
        elif value.isdigit():  # the ZIP stands alone, so a latency like 0.0093127 is not a hit
            found[name] = re.compile(rf"(?<![0-9A-Za-z.]){re.escape(value)}(?![0-9A-Za-z])")
        else:
            found[name] = re.compile(re.escape(value), re.IGNORECASE)
    return found


_PATTERNS = _patterns()


def leaks(text: str) -> dict[str, int]:
    """Canary field name -> hits in ``text`` (only those found)."""
    hits = {name: len(pattern.findall(text)) for name, pattern in _PATTERNS.items()}
    return {name: n for name, n in hits.items() if n}
