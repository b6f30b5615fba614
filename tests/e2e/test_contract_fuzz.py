"""Schemathesis against a live ``exchange serve`` (ingest, tokenizer, admin and query roles), from
the written contracts (contracts/api/*.yaml) and from the OpenAPI the process serves.

Every operation gets generated cases, valid (positive) and invalid (negative) ones, each sent with
a valid token for every scope and again without one. Every answer must be no server error, a
documented status with a documented content type, and a body that conforms to the documented
schema. Failures are collected (operation, check, status) rather than stopped at, so one run shows
them all. Repeatable and bounded for CI: derandomized, ``max_examples`` per operation and mode set
here, no deadline (the server's latency under a loaded CI machine is not what is tested).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from exchange.adapters.jwt import MAX_LIFETIME_S
from tests.support.app import TEST_JWT_SECRET, bearer, make_settings
from tests.support.process import ServeProcess

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = sorted((REPO / "contracts" / "api").glob("*.yaml"))
ROLES = "ingest,tokenizer,admin,query"
CHECKS: list[Any] = [not_a_server_error, status_code_conformance, content_type_conformance,
                     response_schema_conformance]
# Per operation and generation mode; each case is sent twice (with and without a token). A deeper
# local hunt: FUZZ_EXAMPLES=200 uv run pytest tests/e2e/test_contract_fuzz.py
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
MIN_CASES = 1000  # across the served schema and the contracts


@pytest.fixture(scope="module")
def server(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    env = {**stack_env, "JWT_SECRET": TEST_JWT_SECRET, "LOG_LEVEL": "WARNING"}
    proc = ServeProcess(env, ROLES, tmp_path_factory.mktemp("fuzz"), name="fuzz").start()
    try:
        proc.wait_healthy()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def token(stack_env: dict[str, str]) -> dict[str, str]:
    settings = make_settings(stack_env)
    # Valid for the whole run: the longest lifetime the verifier accepts (five minutes could lapse).
    return bearer(settings, sub="fuzzer", scopes="ingest:write tokenize read admin",
                  exp=int(time.time() + MAX_LIFETIME_S - 60))


class Tally:
    def __init__(self) -> None:
        self.cases = 0
        self.statuses: Counter[int] = Counter()
        self.failures: dict[tuple[str, str, int], str] = {}
        self.unnegatable: list[str] = []


def _kinds(failure: AssertionError | FailureGroup) -> str:
    """The failed checks' names (schemathesis groups several failures of one response)."""
    inner = getattr(failure, "exceptions", None) or [failure]
    return ",".join(sorted({type(f).__name__ for f in inner}))


def _fuzz(schema: Any, base_url: str, auth: dict[str, str], tally: Tally) -> None:
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                                 phases=[Phase.explicit, Phase.generate],
                                 suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                for sent in (auth, {"Authorization": ""}):
                    headers = dict(sent)  # the call adds its own headers to the dict it is given
                    response = case.call(base_url=base_url, session=session, headers=headers, timeout=15)
                    tally.cases += 1
                    tally.statuses[response.status_code] += 1
                    try:
                        case.validate_response(response, checks=CHECKS, headers=headers)
                    except (AssertionError, FailureGroup) as failure:
                        key = (case.operation.label, _kinds(failure), response.status_code)
                        tally.failures.setdefault(key, str(failure)[:600])

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing in this operation can be invalid
                tally.unnegatable.append(operation.label)


def test_the_served_openapi_and_the_contracts_hold_under_generated_requests(
    server: ServeProcess, token: dict[str, str]
) -> None:
    tally = Tally()
    served = schemathesis.openapi.from_url(f"{server.url}/schema/openapi.json")
    _fuzz(served, server.url, token, tally)
    served_cases = tally.cases
    for contract in CONTRACTS:
        _fuzz(schemathesis.openapi.from_path(str(contract)), server.url, token, tally)
    print(f"\nschemathesis: {tally.cases} cases ({served_cases} from the served OpenAPI), "
          f"statuses {dict(sorted(tally.statuses.items()))}")
    assert not tally.failures, "\n\n".join(f"{k}: {v}" for k, v in tally.failures.items())
    assert tally.cases >= MIN_CASES
    assert tally.statuses[401] > 0 and any(200 <= s < 300 for s in tally.statuses)  # both doors exercised
    assert not any(s >= 500 for s in tally.statuses)


def test_the_fuzzer_fails_an_answer_the_contract_does_not_document(server: ServeProcess, token: dict[str, str]) -> None:
    """The checks bite: with 401 taken out of /tokenize's documented answers, the requests sent
    without a token are reported as undocumented."""
    contract = yaml.safe_load((REPO / "contracts" / "api" / "tokenizer.openapi.yaml").read_text())
    del contract["paths"]["/tokenize"]["post"]["responses"]["401"]
    contract["paths"] = {"/tokenize": contract["paths"]["/tokenize"]}
    tally = Tally()
    _fuzz(schemathesis.openapi.from_dict(contract), server.url, token, tally)
    assert {(label, kinds, status) for label, kinds, status in tally.failures} >= {
        ("POST /tokenize", "UndefinedStatusCode", 401)}
