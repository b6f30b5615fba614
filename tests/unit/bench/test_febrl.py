from __future__ import annotations

import datetime as dt

import pytest

from exchange_bench.febrl import Refused, ingest_patient

TODAY = dt.date(2026, 12, 5)
ROW = {"given_name": "michaela", "surname": "neumann", "date_of_birth": "19151111", "soc_sec_id": "5304218"}


def test_a_febrl_record_becomes_the_v2_patient_object() -> None:
    assert ingest_patient(ROW, today=TODAY) == {
        "given_name": "michaela", "family_name": "neumann", "dob": "1915-11-11", "ssn": "5304218"
    }


def test_a_missing_ssn_is_left_out() -> None:
    patient = ingest_patient({**ROW, "soc_sec_id": float("nan")}, today=TODAY)
    assert isinstance(patient, dict)
    assert "ssn" not in patient


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"given_name": float("nan")}, "given_name missing"),
        ({"given_name": "  "}, "given_name missing"),
        ({"surname": None}, "family_name missing"),
        ({"date_of_birth": float("nan")}, "dob not a date"),
        ({"date_of_birth": "19319924"}, "dob not a date"),
        ({"date_of_birth": "1931092"}, "dob not a date"),
        ({"date_of_birth": "18991231"}, "dob implausible"),
        ({"date_of_birth": "20261206"}, "dob implausible"),
    ],
)
def test_what_ingest_would_refuse_is_refused_with_its_reason(change: dict[str, object], reason: str) -> None:
    assert ingest_patient({**ROW, **change}, today=TODAY) == Refused(reason)
