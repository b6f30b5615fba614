"""The shared patient_token vectors (tests/data/token-vectors.json, computed by the original rules)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exchange.tokenize import PatientIdentifiers, patient_token
from tests.support.gotokenizer import GoTokenizer

VECTORS_FILE = Path(__file__).resolve().parents[2] / "data" / "token-vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]
VECTOR_KEY = b"exchange-test-vector-key-0123456789"


def _ids(vector: dict[str, Any]) -> PatientIdentifiers:
    return PatientIdentifiers(vector["given_name"], vector["family_name"], vector["dob"], vector["ssn"])


@pytest.mark.parametrize("vector", VECTORS, ids=[f"vector-{i}" for i in range(len(VECTORS))])
def test_every_shared_vector_gives_its_token(vector: dict[str, Any]) -> None:
    assert patient_token(VECTOR_KEY, _ids(vector)) == vector["token"]


def test_go_gives_every_shared_vector_its_token(go_tokenizer: GoTokenizer) -> None:
    # Proves tests/support/gotokenizer restates the original rules, so comparing with it means something.
    results = go_tokenizer.canonicalize([{k: v[k] for k in ("given_name", "family_name", "dob", "ssn")}
                                         for v in VECTORS])
    assert [r["token"] for r in results] == [v["token"] for v in VECTORS]


def test_the_vectors_cover_where_python_and_go_differ() -> None:
    names = "".join(v["given_name"] + v["family_name"] for v in VECTORS)
    assert "\u0130" in names  # capital I with dot: Python's lower() gives two code points, Go 'i'
    assert "\u03a3" in names  # capital sigma: at a word's end Python's lower() gives the final form
    assert "\u001f" in names  # a separator Python's split() splits on and Go's Fields does not
