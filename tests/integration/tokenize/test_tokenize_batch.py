"""POST /tokenize/batch, and the remote client that coalesces a normalizer's records into it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from exchange.ops.logging import configure_logging
from exchange.roles import Role
from exchange.settings import AuthSettings
from exchange.tokenize import HttpTokenizer, InProcessTokenizer, TokenSet
from exchange.tokenize._canonical import InvalidIdentifiers, PatientIdentifiers
from tests.support.app import DEV, make_settings, running_app
from tests.support.process import ServeProcess

SAM = {"given_name": "Sam", "family_name": "Lee", "dob": "1990-01-01", "ssn": "123-45-6789"}
ANNA = {"given_name": "Anna", "family_name": "Kowalska", "dob": "1984-07-19"}
ONLY_TOKENIZER = frozenset({Role.TOKENIZER})


async def test_a_batch_answers_each_record_as_the_linkage_route_does_and_names_a_bad_ones_field(
    stack_env: dict[str, str], canaries: dict[str, str]
) -> None:
    bad = {**SAM, "given_name": canaries["given_name"], "dob": "1990-02-30"}
    async with running_app(make_settings(stack_env), ONLY_TOKENIZER) as client:
        batch = await client.post("/tokenize/batch", json={"items": [SAM, bad, ANNA]}, headers=DEV)
        singles = [(await client.post("/tokenize/linkage", json=one, headers=DEV)).json() for one in (SAM, ANNA)]
    assert batch.status_code == 200, batch.text
    first, problem, third = batch.json()["results"]
    assert problem == {"error": {"field": "dob", "problem": problem["error"]["problem"]}}
    assert canaries["given_name"] not in batch.text
    for got, single in ((first, singles[0]), (third, singles[1])):
        assert got["patient_token"] == single["patient_token"]
        assert got["fields"] == single["fields"]
        flat = sorted((b["key_id"], recipe, b["tokens"][32 * n:32 * (n + 1)])
                      for b in got["linkage"] for n, recipe in enumerate(b["recipes"]))
        assert flat == sorted((t["key_id"], t["recipe"], t["token"]) for t in single["linkage_tokens"])
        assert all(len(b["tokens"]) == 32 * len(b["recipes"]) for b in got["linkage"])


@pytest.mark.parametrize(
    ("body", "named"),
    [({"items": []}, "items"), ({"items": [SAM] * 501}, "items"), ({"items": [{**SAM, "x": 1}]}, "x"),
     ({"records": [SAM]}, "records"), ({"items": [{**SAM, "dob": 19900101}]}, "dob")],
)
async def test_a_malformed_batch_is_a_400_naming_the_problem_and_tokenizes_nothing(
    stack_env: dict[str, str], body: dict[str, object], named: str
) -> None:
    async with running_app(make_settings(stack_env), ONLY_TOKENIZER) as client:
        r = await client.post("/tokenize/batch", json=body, headers=DEV)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert named in r.text


async def test_the_remote_client_coalesces_concurrent_records_into_batches_with_in_process_answers(
    stack_env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(stack_env)
    server = ServeProcess({**stack_env, "ENV": "local"}, "tokenizer", tmp_path).start()
    remote = HttpTokenizer(server.url, settings.tokenizer.key_id, settings.auth, use_dev_token=True)
    local = InProcessTokenizer(settings.tokenizer.hmac_key.reveal().encode(), settings.tokenizer.key_id,
                               settings.linkage.keys())
    calls: list[str] = []

    async def count(request: object) -> None:
        calls.append(str(getattr(request, "url", "")))

    remote._client.event_hooks["request"].append(count)
    people = [PatientIdentifiers(f"Given{n}", f"Family{n % 7}", f"19{50 + n % 40}-0{1 + n % 9}-1{n % 10}",
                                 f"{100000000 + n * 7919}") for n in range(120)]
    people.append(PatientIdentifiers("Bad", "Date", "1990-02-30"))
    try:
        server.wait_healthy()
        configure_logging("INFO")
        caplog.set_level(logging.INFO)
        got = await asyncio.gather(*(remote.tokens(p) for p in people), return_exceptions=True)
    finally:
        await remote.close()
        server.stop()
    expected = [await local.tokens(p) for p in people[:-1]]
    assert got[:-1] == expected
    assert isinstance(got[-1], InvalidIdentifiers) and got[-1].field == "dob"
    assert all(isinstance(g, TokenSet) for g in got[:-1])
    assert all(url.endswith("/tokenize/batch") for url in calls)
    assert len(calls) < len(people) / 4, calls  # one call for the records in flight, not one each
    assert not [r for r in caplog.records if r.name.startswith(("httpx", "httpcore")) and r.levelno < logging.WARNING]
    assert isinstance(settings.auth, AuthSettings)
