"""GET /v1/records/{id}/status: a record's journey, for the client that sent it or an admin."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid

import asyncpg
import pytest

from exchange.roles import Role
from tests.support.app import bearer, make_settings, running_app
from tests.support.db import eventually

pytestmark = pytest.mark.timeout(180)

ROLES = frozenset({Role.INGEST, Role.PUBLISHER, Role.NORMALIZER, Role.TOKENIZER, Role.QUERY})


async def test_the_sender_follows_its_record_to_the_canonical_row_and_no_other_client_can(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    settings = make_settings(stack_env, **isolated_kafka, ENV="test")
    sender = bearer(settings, sub=f"partner-{unique}", scopes="ingest:write")
    body = json.dumps({"source": f"journey-{unique}", "record_kind": "claim", "schema_hint": "partnerA.v1",
                       "patient": {"given_name": "Ada", "family_name": "Byron", "dob": "1980-02-03"},
                       "payload": {"n": 1}}).encode()
    async with running_app(settings, ROLES) as client:
        accepted = await client.post("/v2/ingest", content=body, headers={
            **sender, "Idempotency-Key": f"journey-{unique}", "Content-Type": "application/json"})
        assert accepted.status_code == 202, accepted.text
        path = f"/v1/records/{accepted.json()['record_id']}/status"
        answers = []

        async def canonical() -> bool:
            r = await client.get(path, headers=sender)
            assert r.status_code == 200, r.text
            answers.append(r.json())
            return bool(r.json()["stage"] == "canonical")

        await eventually(canonical, timeout=60)
        status = answers[-1]
        assert answers[0]["stage"] in ("accepted", "published", "processing", "canonical")
        assert status["accepted"]["client"] == f"partner-{unique}"
        assert status["accepted"]["source"] == f"journey-{unique}"
        assert status["raw"] == {"size_bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                                 "state": "canonicalized"}
        [outbox] = status["outbox"]
        assert outbox["pending"] is False
        assert outbox["published_at"] is not None
        attempts = [(a["attempt_no"], a["status"], a["result"]) for a in status["attempts"]]
        assert attempts == [(1, "succeeded", "inserted")]
        assert status["dead_letters"] == []
        normalized = dt.datetime.fromisoformat(status["canonical"]["normalized_at"])
        accepted_at = dt.datetime.fromisoformat(status["accepted"]["at"])
        assert status["latency_ms"] == pytest.approx((normalized - accepted_at).total_seconds() * 1000, abs=0.01)
        assert status["latency_ms"] > 0
        for value in ("Ada", "Byron", "1980-02-03"):
            assert value not in json.dumps(status)

        other = await client.get(path, headers=bearer(settings, sub="someone-else", scopes="ingest:write"))
        assert other.status_code == 404
        unknown = await client.get(f"/v1/records/{uuid.uuid4()}/status", headers=sender)
        assert unknown.status_code == 404  # another client's record answers as an unknown one
        assert {k: v for k, v in unknown.json().items() if k not in ("detail", "correlation_id", "instance")} == {
            k: v for k, v in other.json().items() if k not in ("detail", "correlation_id", "instance")}
        admin = await client.get(path, headers=bearer(settings, sub="ops", scopes="admin"))
        assert admin.status_code == 200
        assert admin.json()["accepted"]["client"] == f"partner-{unique}"
        assert (await client.get(path, headers=bearer(settings, scopes="read"))).status_code == 403
        assert (await client.get(path)).status_code == 401
        bad = await client.get("/v1/records/not-a-uuid/status", headers=sender)
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert bad.json()["detail"] == "record_id: must be a UUID"


async def test_a_dead_lettered_record_shows_each_attempt_and_its_dlq_entry(stack_env: dict[str, str]) -> None:
    settings = make_settings(stack_env, ENV="test")
    record_id = uuid.uuid4()
    at = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    conn = await asyncpg.connect(stack_env["DATABASE_URL"])
    try:
        await conn.execute(
            "INSERT INTO raw_object_manifest (record_id, source, bucket, object_key, sha256, size_bytes, event_version,"
            " state, created_at, client_id) VALUES ($1, 'dlq-src', 'b', $2, $3, 10, '1', 'enqueued', $4, 'partner-x')",
            record_id, f"dlq-src/{record_id}.json", "a" * 64, at)
        for n, transient in ((1, True), (2, False)):
            await conn.execute(
                "INSERT INTO processing_attempts (record_id, pipeline, attempt_no, status, started_at, ended_at, "
                "error_type, error_message, error_stage, transient, result) VALUES ($1, 'normalizer', $2, 'failed', "
                "$3, $3, $4, 'message kept out of the answer', 'tokenize', $5, 'failed')",
                record_id, n, at + dt.timedelta(seconds=n), "TokenizerError" if transient else "InvalidIdentifiers",
                transient)
        await conn.execute(
            "INSERT INTO dlq_events (record_id, event_version, dlq_topic, source_topic, original_event, error_type, "
            "error_message, error_stage, attempts, failed_at) VALUES ($1, '1', 'd', 's', '{}', 'InvalidIdentifiers', "
            "'message kept out of the answer', 'tokenize', 2, $2)", record_id, at + dt.timedelta(seconds=3))
    finally:
        await conn.close()
    async with running_app(settings, frozenset({Role.INGEST})) as client:
        r = await client.get(f"/v1/records/{record_id}/status",
                             headers=bearer(settings, sub="partner-x", scopes="ingest:write"))
    assert r.status_code == 200, r.text
    status = r.json()
    assert status["stage"] == "dead_lettered"
    assert [(a["error_type"], a["transient"]) for a in status["attempts"]] == [
        ("TokenizerError", True), ("InvalidIdentifiers", False)]
    assert [(d["error_type"], d["error_stage"], d["status"]) for d in status["dead_letters"]] == [
        ("InvalidIdentifiers", "tokenize", "open")]
    assert status["canonical"] is None
    assert status["outbox"] == []
    assert status["latency_ms"] == 3000.0
    assert "message kept out" not in r.text
