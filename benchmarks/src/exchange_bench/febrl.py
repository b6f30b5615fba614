"""Febrl benchmark records as ingest bodies: the one mapping every linkage evaluation uses.

Febrl columns: given_name, surname, date_of_birth (YYYYMMDD, may be corrupted, missing or not a
date), soc_sec_id. A record the ingest contract would refuse (a missing name, a dob that is no
date or an implausible one) is refused here too, with the reason, so evaluations count it.
``patient_as_sent`` is what a sender that checks nothing sends for the same record: the
end-to-end evaluation sends every record so, for the service to refuse what it must.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from exchange.tokenize import dob_problem

__all__ = ("Refused", "ingest_patient", "patient_as_sent")


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str  # "given_name missing", "family_name missing", "dob not a date", "dob implausible"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None  # pandas gives NaN for missing


def ingest_patient(row: Mapping[str, object], *, today: dt.date) -> dict[str, str] | Refused:
    """The v2 ``patient`` object for a Febrl record, or why ingest would refuse the record."""
    given, family = _text(row.get("given_name")), _text(row.get("surname"))
    if given is None:
        return Refused("given_name missing")
    if family is None:
        return Refused("family_name missing")
    raw = _text(row.get("date_of_birth"))
    if raw is None or len(raw) != 8 or not raw.isascii() or not raw.isdigit():
        return Refused("dob not a date")
    try:
        dob = dt.date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:
        return Refused("dob not a date")
    if dob_problem(dob, today=today) is not None:  # the rule ingest and the quality gate share
        return Refused("dob implausible")
    patient = {"given_name": given, "family_name": family, "dob": dob.isoformat()}
    ssn = _text(row.get("soc_sec_id"))
    if ssn is not None:
        patient["ssn"] = ssn
    return patient


def patient_as_sent(row: Mapping[str, object]) -> dict[str, str]:
    """The v2 ``patient`` object of a Febrl record, unchecked: present fields as they are, a dob
    of eight digits written ``YYYY-MM-DD`` (a non-date too), missing fields left out. Where
    ``ingest_patient`` admits the record, this is its patient."""
    patient: dict[str, str] = {}
    for field, column in (("given_name", "given_name"), ("family_name", "surname"), ("dob", "date_of_birth"),
                          ("ssn", "soc_sec_id")):
        value = _text(row.get(column))
        if value is None:
            continue
        if field == "dob" and len(value) == 8 and value.isascii() and value.isdigit():
            value = f"{value[:4]}-{value[4:6]}-{value[6:]}"
        patient[field] = value
    return patient
