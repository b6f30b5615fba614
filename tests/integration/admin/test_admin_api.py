"""Admin HTTP API: auth, scope, job lifecycle, validation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from exchange.roles import Role
from tests.support.app import DEV, bearer, make_settings, running_app
from tests.support.db import fetch

ADMIN_ROLES = frozenset({Role.ADMIN, Role.INGEST})


async def test_admin_needs_a_token_and_the_admin_scope(stack_env: dict[str, str]) -> None:
    settings = make_settings(stack_env)
    async with running_app(settings, ADMIN_ROLES) as client:
        assert (await client.get("/admin/dlq")).status_code == 401
        no_scope = await client.get("/admin/dlq", headers=bearer(settings, scopes="ingest:write read"))
        assert no_scope.status_code == 403
        assert no_scope.headers["content-type"].startswith("application/problem+json")
        ok = await client.get("/admin/dlq", headers=bearer(settings, scopes="admin"))
        assert ok.status_code == 200
        assert "entries" in ok.json()


async def test_a_verify_job_is_observable_from_queued_to_its_result(stack_env: dict[str, str], unique: str) -> None:
    settings = make_settings(stack_env)
    source = f"adm-{unique}"
    async with running_app(settings, ADMIN_ROLES) as client:
        body = {"source": source, "record_type": "claim",
                "patient": {"first_name": "A", "last_name": "B", "dob": "1999-09-09"}, "payload": {}}
        assert (await client.post("/v1/ingest", json=body,
                                  headers={**DEV, "Idempotency-Key": f"{unique}-1"})).status_code == 202
        admin = bearer(settings, sub="ops-bob", scopes="admin")
        started = await client.post("/admin/jobs/verify", json={"source": source}, headers=admin)
        assert started.status_code == 202
        job_id = started.json()["job_id"]
        assert started.headers["location"] == f"/admin/jobs/{job_id}"
        job = {}
        for _ in range(100):
            job = (await client.get(f"/admin/jobs/{job_id}", headers=admin)).json()
            if job["status"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.1)
        assert job["status"] == "succeeded"
        assert job["job_name"] == "verify"
        assert job["result"]["raw_count"] == 1
        assert job["result"]["missing_count"] == 1  # no normalizer in this process
        assert (await client.get("/admin/jobs/not-a-job", headers=admin)).status_code == 404
        bad = await client.post("/admin/jobs/replay", json={"source": "../etc"}, headers=admin)
        assert bad.status_code == 400
        assert "../etc" not in bad.text
    audit = await fetch(stack_env["DATABASE_URL"], "SELECT actor, action FROM audit_log WHERE entity_id = $1", job_id)
    assert [(a["actor"], a["action"]) for a in audit] == [("ops-bob", "job.verify.start")]


# -- what schemathesis found: inputs the database or a job would fail on are refused at the door ----

INT64_MAX = 2**63 - 1
NUL = "a\x00b"
READ_AND_ADMIN = frozenset({Role.ADMIN, Role.QUERY})


@pytest.fixture(scope="module")
async def fuzzed(stack_env: dict[str, str]) -> AsyncIterator[tuple[AsyncTestClient[Any], dict[str, str]]]:
    settings = make_settings(stack_env)
    async with running_app(settings, READ_AND_ADMIN) as client:
        yield client, bearer(settings, sub="ops-fuzz", scopes="admin read")


# (method, path, query, JSON body, the parameter the 400 must name)
REFUSED: list[Any] = [
    pytest.param("GET", f"/admin/dlq/{INT64_MAX + 1}", None, None, "entry_id", id="inspect-id-beyond-int64"),
    pytest.param("GET", "/admin/dlq/0", None, None, "entry_id", id="inspect-id-zero"),
    pytest.param("GET", "/admin/dlq/-5", None, None, "entry_id", id="inspect-id-negative"),
    pytest.param("POST", f"/admin/dlq/{INT64_MAX + 1}/reprocess", None, None, "entry_id",
                 id="reprocess-id-beyond-int64"),
    pytest.param("POST", f"/admin/dlq/{10**30}/resolve", None, {"reason": "fixed"}, "entry_id",
                 id="resolve-id-beyond-int64"),
    pytest.param("POST", "/admin/dlq/1/resolve", None, {"reason": NUL}, "reason", id="resolve-reason-nul"),
    pytest.param("GET", "/admin/dlq", {"topic": NUL}, None, "topic", id="list-topic-nul"),
    pytest.param("GET", "/admin/dlq", {"stage": NUL}, None, "stage", id="list-stage-nul"),
    pytest.param("GET", "/admin/dlq", {"error_type": NUL}, None, "error_type", id="list-error-type-nul"),
    pytest.param("GET", "/admin/dlq", {"topic": "t" * 201}, None, "topic", id="list-topic-too-long"),
    pytest.param("GET", "/admin/dlq", {"since": "0001-01-01T00:00:00+01:00"}, None, "since",
                 id="list-since-before-the-first-instant"),
    pytest.param("GET", "/admin/dlq", {"since": "9999-12-31T23:59:59-01:00"}, None, "since",
                 id="list-since-after-the-last-instant"),
    pytest.param("GET", "/admin/dlq", {"limit": "0"}, None, "limit", id="list-limit-zero"),
    pytest.param("GET", "/admin/dlq", {"limit": "-1"}, None, "limit", id="list-limit-negative"),
    pytest.param("GET", "/admin/dlq", {"limit": str(10**20)}, None, "limit", id="list-limit-huge"),
    pytest.param("GET", "/admin/dlq/report", {"hours": str(10**20)}, None, "hours", id="report-hours-huge"),
    pytest.param("GET", "/admin/dlq/report", {"hours": "-3"}, None, "hours", id="report-hours-negative"),
    pytest.param("POST", "/admin/jobs/reconcile", None, {"source": "s1", "orphan_grace_s": 1e300},
                 "orphan_grace_s", id="reconcile-grace-1e300"),
    pytest.param("POST", "/admin/jobs/reconcile", None, {"source": "s1", "stuck_after_s": 1e300},
                 "stuck_after_s", id="reconcile-stuck-1e300"),
    pytest.param("POST", "/admin/jobs/reconcile", None, {"source": "s1", "in_flight_s": -1}, "in_flight_s",
                 id="reconcile-in-flight-negative"),
    pytest.param("POST", "/admin/jobs/replay", None, {"source": "s1", "limit": 10**20}, "limit",
                 id="replay-limit-huge"),
    pytest.param("POST", "/admin/jobs/replay", None, {"source": "s1", "limit": 0}, "limit", id="replay-limit-zero"),
    pytest.param("POST", "/admin/jobs/verify", None, {"source": NUL}, "source", id="verify-source-nul"),
    pytest.param("GET", "/records/a%00b", None, None, "record_id", id="record-id-nul"),
    pytest.param("GET", "/patients/a%00b/records", None, None, "patient_token", id="patient-token-nul"),
    pytest.param("GET", f"/patients/{'a' * 64}/records", {"limit": str(10**20)}, None, "limit",
                 id="patient-records-limit-huge"),
    pytest.param("GET", f"/patients/{'a' * 64}/records", {"limit": "-1"}, None, "limit",
                 id="patient-records-limit-negative"),
]


@pytest.mark.parametrize(("method", "path", "query", "body", "field"), REFUSED)
async def test_a_fuzzed_input_is_a_400_naming_the_parameter_never_a_500(
    fuzzed: tuple[AsyncTestClient[Any], dict[str, str]], method: str, path: str, query: dict[str, str] | None,
    body: dict[str, Any] | None, field: str,
) -> None:
    client, headers = fuzzed
    response = await client.request(method, path, params=query, json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400
    assert [e["field"] for e in problem["errors"]] == [field], problem
    named = json.dumps([problem["detail"], problem["errors"]])
    assert "\\u0000" not in named  # the rule is named, not the value


async def test_a_reconcile_job_with_the_largest_windows_runs_to_its_end(
    fuzzed: tuple[AsyncTestClient[Any], dict[str, str]], unique: str
) -> None:
    # The bound is a window the job's arithmetic takes: at the bound it runs, it does not overflow.
    from exchange.replay import MAX_WINDOW_S

    client, headers = fuzzed
    body = {"source": f"wide-{unique}", "orphan_grace_s": MAX_WINDOW_S, "stuck_after_s": MAX_WINDOW_S,
            "in_flight_s": MAX_WINDOW_S}
    started = await client.post("/admin/jobs/reconcile", json=body, headers=headers)
    assert started.status_code == 202, started.text
    job: dict[str, Any] = {}
    for _ in range(200):
        job = (await client.get(f"/admin/jobs/{started.json()['job_id']}", headers=headers)).json()
        if job["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.05)
    assert job["status"] == "succeeded", job
    assert job["result"]["clean"] is True


@pytest.mark.parametrize("query", [{"topic": "record.ingested.v1.dlq", "stage": "tokenize", "error_type": "X"},
                                   {"since": "0001-01-01T00:00:00Z"}, {"since": "2026-01-01T00:00:00"}])
async def test_ordinary_filters_still_list(
    fuzzed: tuple[AsyncTestClient[Any], dict[str, str]], query: dict[str, str]
) -> None:
    client, headers = fuzzed
    response = await client.get("/admin/dlq", params=query, headers=headers)
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["entries"], list)


@pytest.mark.parametrize("path", [f"/admin/dlq/{INT64_MAX}", f"/admin/dlq/{INT64_MAX}/reprocess"])
async def test_an_id_within_int64_that_does_not_exist_is_a_404(
    fuzzed: tuple[AsyncTestClient[Any], dict[str, str]], path: str
) -> None:
    client, headers = fuzzed
    response = await client.request("POST" if path.endswith("reprocess") else "GET", path, headers=headers)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
