"""Idempotency against a live ``exchange serve``, as a state machine (hypothesis' stateful testing).

Two clients (two JWT subjects) send any interleaving of requests drawn from a few keys and a few
bodies, one at a time or two at once on one key. Every answer must match a model of the contract
(SPEC; contracts/api/ingest.openapi.yaml): a (client, key) seen for the first time is a 202 with a
new record id; the same key with the same body bytes is the original 202 body again (same
``record_id`` and ``correlation_id``) with ``Idempotent-Replayed: true``; the same key with another
body is a 409 problem+json; keys are scoped to the client, so one client's key never answers or
blocks the other's. Two requests racing on a new key make one record: both 202 with one record id
when the bodies agree, else one 202 and one 409.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from exchange.adapters.jwt import MAX_LIFETIME_S
from tests.support.app import TEST_JWT_SECRET, bearer, make_settings
from tests.support.process import ServeProcess

pytestmark = pytest.mark.timeout(600)

CLIENTS = ("client-a", "client-b")
KEYS = 3
BODIES = 3


@pytest.fixture(scope="module")
def server(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    env = {**stack_env, "JWT_SECRET": TEST_JWT_SECRET, "LOG_LEVEL": "WARNING"}
    proc = ServeProcess(env, "ingest", tmp_path_factory.mktemp("idem"), name="idem").start()
    try:
        proc.wait_healthy()
        yield proc
    finally:
        proc.stop()


def test_any_interleaving_of_two_clients_requests_matches_the_idempotency_model(
    server: ServeProcess, stack_env: dict[str, str]
) -> None:
    settings = make_settings(stack_env)
    expires = int(time.time() + MAX_LIFETIME_S - 60)
    tokens = {c: bearer(settings, sub=c, scopes="ingest:write", exp=expires) for c in CLIENTS}
    http = httpx.Client(base_url=server.url, timeout=30)
    pool = ThreadPoolExecutor(max_workers=2)
    counts = {"requests": 0, "machines": 0}

    class Idempotency(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            run = uuid.uuid4().hex[:12]  # fresh keys per machine: the server keeps every earlier run's
            self.keys = [f"idem-{run}-{k}" for k in range(KEYS)]
            self.bodies = [json.dumps({
                "source": f"idem-{run}", "record_type": "encounter", "payload": {"n": b},
                "patient": {"first_name": "Ida", "last_name": "Empotent", "dob": "1980-02-03"},
            }).encode() for b in range(BODIES)]
            self.model: dict[tuple[str, int], tuple[int, dict[str, Any]]] = {}  # -> (body, first 202 body)
            self.record_ids: set[str] = set()
            counts["machines"] += 1

        def _post(self, client: str, key: int, body: int) -> httpx.Response:
            counts["requests"] += 1
            return http.post("/v1/ingest", content=self.bodies[body], headers={
                **tokens[client], "Idempotency-Key": self.keys[key], "Content-Type": "application/json"})

        def _expect(self, client: str, key: int, body: int, answer: httpx.Response) -> None:
            """The model's answer for a request that came after every earlier one."""
            known = self.model.get((client, key))
            if known is None:
                assert answer.status_code == 202, answer.text
                assert "idempotent-replayed" not in answer.headers
                first = answer.json()
                assert first["record_id"] not in self.record_ids  # a new key is a new record
                self.record_ids.add(first["record_id"])
                self.model[(client, key)] = (body, first)
            elif known[0] == body:
                assert answer.status_code == 202, answer.text
                assert answer.headers.get("idempotent-replayed") == "true"
                assert answer.json() == known[1]  # the original answer: same record and correlation ids
            else:
                assert answer.status_code == 409, answer.text
                assert answer.headers["content-type"].startswith("application/problem+json")
                problem = answer.json()
                assert problem["status"] == 409
                assert self.keys[key] not in answer.text  # never echoes the key

        @rule(client=st.sampled_from(CLIENTS), key=st.integers(0, KEYS - 1), body=st.integers(0, BODIES - 1))
        def send(self, client: str, key: int, body: int) -> None:
            self._expect(client, key, body, self._post(client, key, body))

        @rule(client=st.sampled_from(CLIENTS), key=st.integers(0, KEYS - 1), first=st.integers(0, BODIES - 1),
              second=st.integers(0, BODIES - 1))
        def race(self, client: str, key: int, first: int, second: int) -> None:
            """Two requests with one key at once: one is served first (serialized by the key's lock),
            so the pair matches the model in one of the two orders."""
            futures = [pool.submit(self._post, client, key, b) for b in (first, second)]
            answers = [f.result() for f in futures]
            known = self.model.get((client, key))
            if known is None:
                accepted = [(b, a) for b, a in zip((first, second), answers, strict=True)
                            if a.status_code == 202 and "idempotent-replayed" not in a.headers]
                assert len(accepted) == 1, [a.text for a in answers]  # exactly one made the record
                winner, original = accepted[0]
                self._expect(client, key, winner, original)
                for b, a in zip((first, second), answers, strict=True):
                    if a is not original:
                        self._expect(client, key, b, a)
            else:
                for b, a in zip((first, second), answers, strict=True):
                    self._expect(client, key, b, a)

    try:
        run_state_machine_as_test(Idempotency, settings=hypothesis_settings(
            max_examples=20, stateful_step_count=15, derandomize=True, deadline=None, database=None,
            suppress_health_check=list(HealthCheck)))
    finally:
        http.close()
        pool.shutdown()
    print(f"\nidempotency model: {counts['machines']} interleavings, {counts['requests']} requests")
    assert counts["requests"] >= 200
