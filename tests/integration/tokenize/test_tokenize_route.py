"""POST /tokenize: the same pure function over HTTP, with auth and 400s."""

from __future__ import annotations

import pytest

from exchange.roles import Role
from tests.support.app import DEV, bearer, make_settings, running_app

VECTOR = "5a4e67e22b4dfe9d424fff8dafb5e086b4f442f71d66316a16d83f54f1807652"
SAM = {"given_name": "Sam", "family_name": "Lee", "dob": "1990-01-01", "ssn": "123-45-6789"}
ANNA = {"given_name": "Anna", "family_name": "Kowalska", "dob": "1984-07-19", "ssn": "215-66-4031"}
ONLY_TOKENIZER = frozenset({Role.TOKENIZER})


@pytest.fixture
def vector_env(stack_env: dict[str, str]) -> dict[str, str]:
    return {**stack_env, "TOKENIZER_HMAC_KEY": "exchange-test-vector-key-0123456789"}


async def test_the_test_vector_over_http_and_determinism(vector_env: dict[str, str]) -> None:
    async with running_app(make_settings(vector_env), ONLY_TOKENIZER) as client:
        first = await client.post("/tokenize", json=SAM, headers=DEV)
        second = await client.post("/tokenize", json=SAM, headers=DEV)
        changed = await client.post("/tokenize", json={**SAM, "dob": "1990-01-02"}, headers=DEV)
    assert first.status_code == 200
    assert first.json() == {"patient_token": VECTOR}
    assert second.json() == first.json()
    assert changed.json()["patient_token"] != VECTOR


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SAM, "given_name": ""}, "given_name"),
        ({**SAM, "family_name": "   "}, "family_name"),
        ({**SAM, "dob": "1990-13-01"}, "dob"),
        ({**SAM, "dob": "01/01/1990"}, "dob"),
        ({"given_name": "Sam", "family_name": "Lee"}, "dob"),
        ({**SAM, "extra": "x"}, "extra"),
    ],
)
async def test_empty_names_and_bad_dates_are_400_naming_the_field(
    vector_env: dict[str, str], body: dict[str, str], field: str
) -> None:
    async with running_app(make_settings(vector_env), ONLY_TOKENIZER) as client:
        r = await client.post("/tokenize", json=body, headers=DEV)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert field in problem["detail"]
    for value in ("1990-13-01", "01/01/1990"):
        assert value not in r.text


async def test_tokenize_needs_the_tokenize_scope(vector_env: dict[str, str]) -> None:
    settings = make_settings(vector_env)
    async with running_app(settings, ONLY_TOKENIZER) as client:
        assert (await client.post("/tokenize", json=SAM)).status_code == 401
        wrong = await client.post("/tokenize", json=SAM, headers=bearer(settings, scopes="ingest:write"))
        assert wrong.status_code == 403
        right = await client.post("/tokenize", json=SAM, headers=bearer(settings, scopes="tokenize"))
        assert right.status_code == 200
        assert right.json() == {"patient_token": VECTOR}


async def test_the_linkage_route_gives_the_seed_token_and_linkage_tokens_under_every_key(
    vector_env: dict[str, str],
) -> None:
    rotating = {**vector_env, "LINKAGE_PREVIOUS_HMAC_KEY": "p" * 40, "LINKAGE_PREVIOUS_KEY_ID": "l0"}
    async with running_app(make_settings(rotating), ONLY_TOKENIZER) as client:
        seed_only = await client.post("/tokenize", json=ANNA, headers=DEV)
        full = await client.post("/tokenize/linkage", json=ANNA, headers=DEV)
        again = await client.post("/tokenize/linkage", json=ANNA, headers=DEV)
        placeholder = await client.post("/tokenize/linkage", json=SAM, headers=DEV)
        no_ssn = await client.post("/tokenize/linkage", json={**ANNA, "ssn": None}, headers=DEV)
        bad = await client.post("/tokenize/linkage", json={**SAM, "dob": "0000-01-01"}, headers=DEV)
        anonymous = await client.post("/tokenize/linkage", json=SAM)
    assert full.status_code == 200
    body = full.json()
    assert body["patient_token"] == seed_only.json()["patient_token"]  # the seed token, unchanged
    assert placeholder.json()["patient_token"] == VECTOR
    assert "ssn" not in placeholder.json()["fields"]  # 123-45-6789 is a known placeholder: no SSN for linkage
    assert again.json() == body  # deterministic
    assert body["fields"] == ["dob", "family", "given", "ssn"]
    by_key: dict[str, set[str]] = {}
    for t in body["linkage_tokens"]:
        by_key.setdefault(t["key_id"], set()).add(t["recipe"])
    assert set(by_key) == {make_settings(vector_env).linkage.key_id, "l0"}
    assert by_key["l0"] == next(iter(by_key.values()))  # the same recipes under each key...
    tokens = {t["token"] for t in body["linkage_tokens"]}
    assert len(tokens) == len(body["linkage_tokens"])  # ...and unrelated tokens
    without = no_ssn.json()
    assert without["fields"] == ["dob", "family", "given"]
    assert not any("ssn" in t["recipe"] for t in without["linkage_tokens"])  # no token for a missing field
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "dob"
    assert anonymous.status_code == 401
    for value in ANNA.values():
        assert value not in full.text
