from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.tokenize import InvalidIdentifiers, PatientIdentifiers, canonical_string, patient_token

VECTOR_KEY = b"exchange-test-vector-key-0123456789"
SAM = PatientIdentifiers("Sam", "Lee", "1990-01-01", "123-45-6789")


def test_the_shared_test_vector() -> None:
    assert patient_token(VECTOR_KEY, SAM) == "5a4e67e22b4dfe9d424fff8dafb5e086b4f442f71d66316a16d83f54f1807652"


def test_canonical_string_follows_the_original_rules() -> None:
    ids = PatientIdentifiers("  Mary   Ann ", "O'Brien", "1990-01-01", " 123 45-6789 ")
    assert canonical_string(ids) == "given_name=mary ann|family_name=o'brien|dob=1990-01-01|ssn=123456789"


def test_tokens_are_deterministic() -> None:
    assert patient_token(VECTOR_KEY, SAM) == patient_token(VECTOR_KEY, SAM)


@pytest.mark.parametrize(
    "changed",
    [
        PatientIdentifiers("Sal", "Lee", "1990-01-01", "123-45-6789"),
        PatientIdentifiers("Sam", "Lea", "1990-01-01", "123-45-6789"),
        PatientIdentifiers("Sam", "Lee", "1990-01-02", "123-45-6789"),
        PatientIdentifiers("Sam", "Lee", "1990-01-01", "123-45-6780"),
        PatientIdentifiers("Sam", "Lee", "1990-01-01", None),
    ],
)
def test_each_field_changes_the_token(changed: PatientIdentifiers) -> None:
    assert patient_token(VECTOR_KEY, changed) != patient_token(VECTOR_KEY, SAM)


def test_another_key_gives_another_token() -> None:
    assert patient_token(b"another-key-another-key-another-key", SAM) != patient_token(VECTOR_KEY, SAM)


def test_an_ssn_without_digits_counts_as_missing() -> None:
    no_ssn = PatientIdentifiers("Sam", "Lee", "1990-01-01", None)
    assert patient_token(VECTOR_KEY, PatientIdentifiers("Sam", "Lee", "1990-01-01", "--")) == patient_token(
        VECTOR_KEY, no_ssn
    )


words = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'-", min_size=1, max_size=10),
                 min_size=1, max_size=3)
whitespace = st.text(alphabet=" \t\n\r\u00a0\u2003", min_size=1, max_size=4)
edges = st.text(alphabet=" \t\n\u00a0", max_size=3)


@st.composite
def messy(draw: st.DrawFn, parts: list[str]) -> str:
    """The same name with random case, runs of whitespace inside and whitespace around."""
    cased = ["".join(c.upper() if draw(st.booleans()) else c.lower() for c in part) for part in parts]
    out = cased[0]
    for part in cased[1:]:
        out += draw(whitespace) + part
    return draw(edges) + out + draw(edges)


@given(data=st.data(), given_parts=words, family_parts=words)
def test_case_and_whitespace_never_change_the_token(
    data: st.DataObject, given_parts: list[str], family_parts: list[str]
) -> None:
    clean = PatientIdentifiers(" ".join(given_parts).lower(), " ".join(family_parts).lower(), "1990-01-01", None)
    noisy = PatientIdentifiers(data.draw(messy(given_parts)), data.draw(messy(family_parts)), " 1990-01-01 ", None)
    assert patient_token(VECTOR_KEY, noisy) == patient_token(VECTOR_KEY, clean)


@pytest.mark.parametrize(
    ("ids", "field"),
    [
        (PatientIdentifiers("", "Lee", "1990-01-01"), "given_name"),
        (PatientIdentifiers("   ", "Lee", "1990-01-01"), "given_name"),
        (PatientIdentifiers("Sam", "\t", "1990-01-01"), "family_name"),
        (PatientIdentifiers("Sam", "Lee", "1990-13-01"), "dob"),
        (PatientIdentifiers("Sam", "Lee", "01/02/1990"), "dob"),
        (PatientIdentifiers("Sam", "Lee", "1990-02-30"), "dob"),
    ],
)
def test_empty_names_and_bad_dates_are_refused(ids: PatientIdentifiers, field: str) -> None:
    with pytest.raises(InvalidIdentifiers) as info:
        patient_token(VECTOR_KEY, ids)
    assert info.value.field == field


def test_identifiers_never_show_in_repr() -> None:
    assert "Sam" not in repr(SAM)
    assert "123" not in repr(SAM)
