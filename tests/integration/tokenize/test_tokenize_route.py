"""POST /tokenize: the same pure function over HTTP, with auth and 400s."""

from __future__ import annotations

import pytest

from exchange.roles import Role
from tests.support.app import DEV, bearer, make_settings, running_app

VECTOR = "5a4e67e22b4dfe9d424fff8dafb5e086b4f442f71d66316a16d83f54f1807652"
SAM = {"given_name": "Sam", "family_name": "Lee", "dob": "1990-01-01", "ssn": "123-45-6789"}
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
