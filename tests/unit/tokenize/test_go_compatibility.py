"""Our canonicalization against Go's own standard library, the original tokenizer's language.

Every code point goes through both (a name per 512 of them); hypothesis then mixes them with
the awkward ones into whole records. Python 3.11's unicodedata is Unicode 14.0 and Go's tables
are newer (15.0 for Go 1.21-1.26): the generated letters are those assigned in Unicode 14, and a
test pins that no code point assigned only in Go's version has a case mapping or is white space.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.tokenize import InvalidIdentifiers, PatientIdentifiers, canonical_string, patient_token
from tests.support.gotokenizer import GoTokenizer, tables

VECTOR_KEY = b"exchange-test-vector-key-0123456789"
ALL_CODE_POINTS = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]  # JSON cannot carry surrogates


def _ours(record: dict[str, str | None]) -> tuple[str | None, str | None, str | None]:
    ids = PatientIdentifiers(record["given_name"] or "", record["family_name"] or "", record["dob"] or "",
                             record["ssn"])
    try:
        return canonical_string(ids), patient_token(VECTOR_KEY, ids), None
    except InvalidIdentifiers as exc:
        return None, None, exc.field


def _agree(go_tokenizer: GoTokenizer, batch: list[dict[str, str | None]]) -> None:
    for record, go in zip(batch, go_tokenizer.canonicalize(batch), strict=True):
        assert _ours(record) == (go["canonical"], go["token"], go["error_field"]), repr(record)


def test_every_code_point_canonicalizes_as_in_go(go_tokenizer: GoTokenizer) -> None:
    # Each code point three times: beside its neighbours (runs of white space, Σ after other letters),
    # between two cased letters (a lone white space splits, Σ is never word-final) and ending a word
    # after a cased letter (where str.lower writes Σ as ς).
    chunks = [ALL_CODE_POINTS[i:i + 512] for i in range(0, len(ALL_CODE_POINTS), 512)]
    batch: list[dict[str, str | None]] = [
        {"given_name": "".join(chunk), "family_name": "A" + "A".join(chunk) + "A", "dob": "1990-01-01", "ssn": None}
        for chunk in chunks
    ] + [
        {"given_name": " ".join(f"A{ch}" for ch in chunk), "family_name": "x", "dob": "1990-01-01", "ssn": None}
        for chunk in chunks
    ]
    _agree(go_tokenizer, batch)


def test_code_points_newer_than_pythons_tables_have_no_case_mapping_in_go(go_binary: Path) -> None:
    # Assigned in Go's Unicode version but unknown to Python's: were one cased, Python would leave it
    # as it is and Go would not (then names holding it would not link). Go 1.21-1.26 use Unicode 15.0.
    table = tables(go_binary)
    newer_cased = [f"U+{cp:04X}" for cp, _ in table["lower"] if unicodedata.category(chr(cp)) == "Cn"]
    newer_space = [f"U+{cp:04X}" for cp in table["space"] if unicodedata.category(chr(cp)) == "Cn"]
    assert (newer_cased, newer_space) == ([], [])
    version = tuple(int(part) for part in table["version"].split("."))
    assert version >= tuple(int(part) for part in unicodedata.unidata_version.split("."))


def test_our_white_space_is_gos_not_pythons(go_binary: Path) -> None:
    go_spaces = {chr(cp) for cp in tables(go_binary)["space"]}
    assert {ch for ch in ALL_CODE_POINTS if ch.isspace()} - go_spaces == {"\x1c", "\x1d", "\x1e", "\x1f"}
    assert go_spaces - {ch for ch in ALL_CODE_POINTS if ch.isspace()} == set()


# Code points where the rules are most likely to part: white space of either language, the case
# mappings Python and Go handle differently, title case, compatibility forms, non-ASCII digits.
TRICKY = (
    "\t\n\v\f\r \x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
    "\u0130I\u0131i\u03a3\u03c3\u03c2\u01c5\u01c4\u01c6\u01c8\u01cb\u1e9e\u00dfK\u212a\u212b\u2126\u1fa8\ufb03"
    "\uff33\uff11\u0663\u0966-/'._"
)
letters = st.characters(blacklist_categories=("Cs", "Cn"))
names = st.text(alphabet=st.one_of(st.sampled_from(TRICKY), letters), max_size=12)
dobs = st.one_of(
    st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}"),
    st.from_regex(r"\A[ ]?[0-9]{4}-[0-9]{2}-[0-9]{2}[ \n]?\Z"),
    st.text(alphabet="0123456789-\uff11 /", max_size=12),
    st.sampled_from(["0000-02-29", "1900-02-29", "2000-02-29", "1990-1-01", "\x1c1990-01-01",
                     "\uff11\uff19\uff19\uff10-01-01"]),
)
ssn_chars = st.one_of(st.sampled_from("0123456789-\uff11\u0663 "), letters)
ssns = st.one_of(st.none(), st.text(alphabet=ssn_chars, max_size=12))
records = st.fixed_dictionaries({"given_name": names, "family_name": names, "dob": dobs, "ssn": ssns})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(records, min_size=1, max_size=60))
def test_generated_identifiers_canonicalize_and_tokenize_as_in_go(
    go_tokenizer: GoTokenizer, batch: list[dict[str, str | None]]
) -> None:
    _agree(go_tokenizer, batch)
