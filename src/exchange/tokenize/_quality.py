"""Quality rules for patient identifiers: what ingest refuses at the door and the normalizer's
quality gate refuses later, from this one place, so nothing ingest accepts is dead-lettered
for it afterwards.

Pure: no I/O. Problems name a rule, never the value.
"""

from __future__ import annotations

import datetime as dt

__all__ = ("EARLIEST_DOB", "dob_problem")

EARLIEST_DOB = dt.date(1850, 1, 1)
"""No one alive, and no record we take, was born before this."""


def dob_problem(dob: dt.date, *, today: dt.date | None = None) -> str | None:
    """Why ``dob`` is not a plausible date of birth, or None when it is. ``today`` is the UTC
    date unless given (ingest and the normalizer both judge by UTC, so a date ingest accepted
    stays acceptable when the record is normalized later)."""
    if dob > (today or dt.datetime.now(dt.UTC).date()):
        return "must not be in the future"
    if dob < EARLIEST_DOB:
        return f"must not be before {EARLIEST_DOB.isoformat()}"
    return None
