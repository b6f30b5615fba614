"""Admin HTTP API: auth, scope, job lifecycle, validation."""

from __future__ import annotations

import asyncio

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
