"""Linkage key rotation: every record re-tokenized from raw storage under the new key by a job that
is killed (SIGKILL) in the middle and resumed; persons keep their ids; the old key's tokens go only
once the job verified completeness. In a database of its own: the job walks every record."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exchange.adapters.migrations import upgrade_to_head
from tests.support.app import DEV, make_settings, running_app
from tests.support.db import create_database, drop_database, eventually, fetch, fetchval

pytestmark = pytest.mark.timeout(600)
REPO = Path(__file__).resolve().parents[2]
PEOPLE, RECORDS_EACH = 40, 3


@pytest.fixture
def own_db(stack_env: dict[str, str], unique: str) -> Iterator[str]:
    name = f"rotation_{unique}"
    dsn = asyncio.run(create_database(stack_env["DATABASE_URL"], name))
    upgrade_to_head(dsn, REPO / "migrations")
    try:
        yield dsn
    finally:
        asyncio.run(drop_database(stack_env["DATABASE_URL"], name))


GIVEN = ("Amelia", "Bruno", "Celeste", "Dmitri", "Esther", "Fabian", "Greta", "Hector", "Ingrid", "Jasper",
         "Katrin", "Lorenzo", "Mirela", "Nikolai", "Odette", "Pascal", "Quentin", "Rosalind", "Severin", "Tamsin",
         "Ulrich", "Valeria", "Wendell", "Xiomara", "Yannick", "Zuzana", "Anselm", "Beatrix", "Cosimo", "Delphine",
         "Emeric", "Flavia", "Gideon", "Henrike", "Isidor", "Jolanda", "Kasimir", "Leonora", "Marius", "Noemi")


def _patient(person: int, variant: int, unique: str) -> dict[str, Any]:
    """Three records of one person: as is, with a typo in the given name, and without the SSN."""
    given = GIVEN[person]
    family = "".join(chr(ord("a") + int(c, 16)) for c in unique[:6]).capitalize() + "son"
    patient = {"given_name": given[:-1] if variant == 1 else given, "family_name": family,
               "dob": f"19{40 + person:02d}-0{1 + person % 9}-1{person % 10}"}
    if variant != 2:
        patient["ssn"] = f"{600 + person:03d}-{int(unique[:4], 16) % 90 + 10:02d}-{1000 + person:04d}"
    return patient


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "exchange.cli", "linkage", "rotate", *args],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def _persons(dsn: str) -> dict[str, str]:
    return {r["record_id"]: r["person_id"] for r in
            await fetch(dsn, "SELECT record_id::text, person_id::text FROM record_persons")}


async def test_a_rotation_killed_midway_resumes_keeps_persons_and_retires_the_old_key_when_complete(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], own_db: str, unique: str, tmp_path: Path
) -> None:
    # A short lease: the killed run's lease runs out quickly, and --resume waits it out.
    base = {**stack_env, **isolated_kafka, "DATABASE_URL": own_db, "JOB_LEASE_S": "2"}
    old_key, old_id = stack_env["LINKAGE_HMAC_KEY"], make_settings(stack_env).linkage.key_id
    ids: dict[tuple[int, int], str] = {}
    async with running_app(make_settings(base)) as client:
        for person in range(PEOPLE):
            for variant in range(RECORDS_EACH):
                body = {"source": f"rot-{unique}", "record_kind": "encounter", "schema_hint": "partnerA.v1",
                        "patient": _patient(person, variant, unique), "payload": {"n": variant}}
                answer = await client.post("/v2/ingest", json=body,
                                           headers={**DEV, "Idempotency-Key": f"{unique}-{person}-{variant}"})
                assert answer.status_code == 202, answer.text
                ids[(person, variant)] = answer.json()["record_id"]

        async def all_linked() -> bool:
            return await fetchval(own_db, "SELECT count(*) FROM record_persons") == PEOPLE * RECORDS_EACH

        await eventually(all_linked, timeout=120)
    before = await _persons(own_db)
    assert len(set(before.values())) == PEOPLE  # the fixture's people, each found whole
    assert all(before[ids[(p, 0)]] == before[ids[(p, v)]] for p in range(PEOPLE) for v in range(RECORDS_EACH))

    rotated = {**base, "LINKAGE_HMAC_KEY": secrets.token_urlsafe(32), "LINKAGE_KEY_ID": "l2",
               "LINKAGE_PREVIOUS_HMAC_KEY": old_key, "LINKAGE_PREVIOUS_KEY_ID": old_id}
    first = _cli(rotated, "--batch-size", "2")
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and first.poll() is None:
        saved = await fetchval(own_db, "SELECT checkpoint FROM job_checkpoints LIMIT 1")
        done = int((saved or {}).get("done", 0))
        if done >= 10:
            first.send_signal(signal.SIGKILL)
            break
        await asyncio.sleep(0.02)
    first.communicate(timeout=30)  # reaps it and closes its pipes
    assert first.returncode == -signal.SIGKILL, "the job ended before it could be killed midway"
    assert 10 <= done < PEOPLE * RECORDS_EACH
    assert await fetchval(own_db, "SELECT count(*) FROM record_linkage WHERE key_id = $1", old_id) > 0
    job_id = await fetchval(own_db, "SELECT job_run_id::text FROM job_runs WHERE job_name = 'linkage-rotate'")
    assert await fetchval(own_db, "SELECT status FROM job_runs WHERE job_run_id = $1::uuid", job_id) == "running"

    second = _cli(rotated, "--resume", job_id)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-2000:]
    result = json.loads(out)
    assert result["verified"] is True and result["incomplete"] == 0
    assert result["records"] == PEOPLE * RECORDS_EACH  # across both runs, each record once
    assert result["retired_key_ids"] == [old_id] and result["tokens_removed"] > 0
    # The retirement removed tokens outside ``linkage_apply``: it marked the linkage log so.
    assert await fetchval(own_db, "SELECT count(*) FROM linkage_changes WHERE tokens IS NULL") == 1
    assert "re-tokenize progress" in err  # plain progress lines when not on a TTY

    keys = await fetch(own_db, "SELECT key_id, count(DISTINCT record_id) AS n FROM record_linkage GROUP BY key_id")
    assert {(r["key_id"], r["n"]) for r in keys} == {("l2", PEOPLE * RECORDS_EACH)}
    tokens = await fetchval(own_db, "SELECT count(*) FROM linkage_tokens")
    assert tokens == await fetchval(own_db, "SELECT sum(length(tokens) / 16) FROM record_linkage")
    assert await _persons(own_db) == before  # persons keep their ids
    actions = {r["action"] for r in await fetch(own_db, "SELECT action FROM audit_log")}
    assert {"job.linkage-rotate.start", "job.linkage-rotate.resume", "job.linkage-rotate.finish"} <= actions

    # After the rotation, the old key can go: a new record of a known person still joins them.
    after = {**base, "LINKAGE_HMAC_KEY": rotated["LINKAGE_HMAC_KEY"], "LINKAGE_KEY_ID": "l2"}
    async with running_app(make_settings(after)) as client:
        body = {"source": f"rot-{unique}", "record_kind": "claim", "schema_hint": "partnerA.v1",
                "patient": _patient(7, 0, unique), "payload": {"late": True}}
        answer = await client.post("/v2/ingest", json=body, headers={**DEV, "Idempotency-Key": f"{unique}-late"})
        late = answer.json()["record_id"]

        async def joined() -> bool:
            return await fetchval(own_db, "SELECT count(*) FROM record_persons WHERE record_id = $1::uuid", late) == 1

        await eventually(joined, timeout=60)
    persons = await _persons(own_db)
    assert persons[late] == before[ids[(7, 0)]]


