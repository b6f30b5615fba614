"""v1 and v2 records end as PII-free canonical rows with the right metadata."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from exchange.roles import Role
from tests.support.app import DEV, make_settings, running_app
from tests.support.db import eventually, fetch, fetchval
from tests.support.kafka import read_all, read_headers


def _v1(source: str, c: dict[str, str]) -> dict[str, Any]:
    return {
        "source": source, "record_type": "lab_result",
        "patient": {"first_name": c["given_name"], "last_name": c["family_name"], "dob": c["dob"], "ssn": c["ssn"]},
        "payload": {"test_code": "A1C", "street": c["street"], "mrn": c["mrn"], "email": c["email"],
                    "phone": c["phone"], "notes": c["other_id"]},
    }


def _v2(source: str, c: dict[str, str]) -> dict[str, Any]:
    return {
        "source": source, "record_kind": "claim", "schema_hint": "partnerA.v2",
        # Same person, other spelling: case and whitespace must not matter.
        "patient": {"given_name": f"  {c['given_name'].upper()} ", "family_name": c["family_name"].lower(),
                    "dob": c["dob"], "ssn": c["ssn"].replace("-", "")},
        "payload": {"amount": 12, "member_id": c["member_id"], "account": c["account"]},
    }


async def _canonical(dsn: str, record_id: str) -> list[Any]:
    return await fetch(dsn, "SELECT * FROM canonical_records WHERE record_id = $1", uuid.UUID(record_id))


async def test_v1_and_v2_records_become_canonical_rows_that_link_the_same_person(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, canaries: dict[str, str]
) -> None:
    settings = make_settings(stack_env, **isolated_kafka)
    dsn = stack_env["DATABASE_URL"]
    source = f"flow-{unique}"
    async with running_app(settings) as client:
        r1 = await client.post("/v1/ingest", json=_v1(source, canaries),
                               headers={**DEV, "Idempotency-Key": f"{unique}-v1"})
        r2 = await client.post("/v2/ingest", json=_v2(source, canaries),
                               headers={**DEV, "Idempotency-Key": f"{unique}-v2"})
        assert r1.status_code == 202, r1.text
        assert r2.status_code == 202, r2.text
        id1, id2 = r1.json()["record_id"], r2.json()["record_id"]

        async def both() -> bool:
            return len(await _canonical(dsn, id1)) == 1 and len(await _canonical(dsn, id2)) == 1

        await eventually(both, timeout=30)

    row1 = (await _canonical(dsn, id1))[0]
    row2 = (await _canonical(dsn, id2))[0]
    assert row1["event_version"] == "1"
    assert row1["record_kind"] is None
    assert row1["schema_hint"] is None
    assert row2["event_version"] == "2"
    assert row2["record_kind"] == "claim"
    assert row2["schema_hint"] == "partnerA.v2"
    assert row1["source"] == row2["source"] == source
    assert row1["raw_object_key"] == f"{source}/{id1}.json"
    assert row1["ingested_at"].tzinfo is not None
    assert row1["correlation_id"] == r1.json()["correlation_id"]

    n1, n2 = row1["normalized"], row2["normalized"]
    assert set(n1) == set(n2) == {"patient_token", "meta"}
    assert n1["patient_token"] == n2["patient_token"]
    assert len(n1["patient_token"]) == 64
    assert n1["meta"]["record_type"] == "lab_result"
    assert n2["meta"]["record_kind"] == "claim"
    # Identifier-named payload keys are left out of meta; harmless ones stay.
    assert n1["meta"]["payload_keys"] == ["notes", "test_code"]  # key names only, never values
    assert n2["meta"]["payload_keys"] == ["amount"]

    # Tokens only: no canary value in any canonical column or in the derived index.
    dumped = json.dumps([dict(row1), dict(row2)], default=str)
    index = await fetch(dsn, "SELECT * FROM derived_patient_record_index WHERE source = $1", source)
    dumped += json.dumps([dict(r) for r in index], default=str)
    for value in canaries.values():
        assert value not in dumped, "a patient identifier reached a canonical row"
    assert {r["patient_token"] for r in index} == {n1["patient_token"]}

    # Ledger: one successful attempt each; manifest says canonicalized.
    states = await fetch(dsn, "SELECT status, attempt_count FROM processing_stage_state WHERE record_id = ANY($1)",
                         [uuid.UUID(id1), uuid.UUID(id2)])
    assert [(s["status"], s["attempt_count"]) for s in states] == [("succeeded", 1), ("succeeded", 1)]
    manifest = await fetchval(dsn, "SELECT count(*) FROM raw_object_manifest WHERE source=$1 AND state='canonicalized'",
                              source)
    assert manifest == 2


async def test_the_published_events_carry_correlation_and_trace_headers(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    settings = make_settings(stack_env, **isolated_kafka)
    body = {"source": f"hdr-{unique}", "record_type": "encounter",
            "patient": {"first_name": "Sam", "last_name": "Lee", "dob": "1990-01-01"}, "payload": {}}
    async with running_app(settings, frozenset({Role.INGEST, Role.PUBLISHER})) as client:
        r = await client.post("/v1/ingest", json=body,
                              headers={**DEV, "Idempotency-Key": f"{unique}-h", "X-Correlation-Id": f"corr-{unique}"})
        assert r.status_code == 202
        messages = read_all(stack_env["KAFKA_BROKERS"], isolated_kafka["TOPIC_RECORD_INGESTED_V1"], expect=1)
    assert len(messages) == 1
    key, value = messages[0]
    assert key.decode() == r.json()["record_id"]
    event = json.loads(value)
    assert event["correlation_id"] == f"corr-{unique}"
    assert event["event_version"] == "1"
    headers = read_headers(stack_env["KAFKA_BROKERS"], isolated_kafka["TOPIC_RECORD_INGESTED_V1"])[0]
    assert headers["correlation_id"] == f"corr-{unique}"
    # W3C traceparent: version-traceid-spanid-flags, continuing the HTTP request's trace.
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", headers["traceparent"])
