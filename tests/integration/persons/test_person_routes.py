"""Persons through the whole pipeline and the read routes: HTTP ingest, normalizer, linkage, query."""

from __future__ import annotations

import uuid
from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.app import DEV, make_settings, running_app
from tests.support.db import eventually, fetch, fetchval


def _body(source: str, given: str, family: str, dob: str, ssn: str | None, n: int) -> dict[str, Any]:
    patient = {"given_name": given, "family_name": family, "dob": dob}
    if ssn is not None:
        patient["ssn"] = ssn
    return {"source": source, "record_kind": "encounter", "schema_hint": "partnerA.v1", "patient": patient,
            "payload": {"visit": n}}


async def _ingest(client: AsyncTestClient[Any], unique: str, n: int, body: dict[str, Any]) -> str:
    answer = await client.post("/v2/ingest", json=body, headers={**DEV, "Idempotency-Key": f"{unique}-{n}"})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["record_id"])


async def test_records_of_one_person_from_two_sources_share_a_person_the_routes_explain(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    settings = make_settings(stack_env, **isolated_kafka)
    dsn = stack_env["DATABASE_URL"]
    # A surname and an SSN of this test's own, so no other test's records can be linked to these.
    family, ssn = f"Q{unique}", f"{int(unique[:8], 16) % 10**9:09d}"
    async with running_app(settings) as client:
        a1 = await _ingest(client, unique, 1, _body(f"hosp-a-{unique}", "Annabel", family, "1980-02-03", ssn, 1))
        a2 = await _ingest(client, unique, 2, _body(f"hosp-b-{unique}", "Anabel", family, "1980-03-02", ssn, 2))
        a3 = await _ingest(client, unique, 3, _body(f"hosp-b-{unique}", "Annabel", family, "1980-02-03", None, 3))
        stranger = await _ingest(client, unique, 4, _body(f"hosp-a-{unique}", "Bo", f"Z{unique}", "1980-02-03",
                                                          None, 4))
        ids = [a1, a2, a3, stranger]

        async def persons_ready() -> bool:
            return await fetchval(dsn, "SELECT count(*) FROM record_persons WHERE record_id = ANY($1::uuid[])",
                                  ids) == 4

        await eventually(persons_ready, timeout=60)

        links = {rid: (await client.get(f"/records/{rid}/linkage", headers=DEV)).json() for rid in ids}
        person = links[a1]["person_id"]
        assert links[a2]["person_id"] == links[a3]["person_id"] == person  # typo + swapped dob; no SSN
        assert links[stranger]["person_id"] != person  # only the dob in common
        explained = {a["record_id"]: a for a in links[a1]["agreements"]}
        assert set(explained) >= {a2, a3}
        assert explained[a3]["links"] is True and "given+family" in explained[a3]["recipes"]
        assert all(a["weight_bits"] >= links[a1]["threshold_bits"] for a in links[a1]["agreements"] if a["links"])
        assert links[a1]["fields"] == ["dob", "family", "given", "ssn"]
        assert links[a3]["fields"] == ["dob", "family", "given"]
        assert links[stranger]["agreements"] == []

        first = (await client.get(f"/persons/{person}/records", params={"limit": 2}, headers=DEV)).json()
        assert len(first["records"]) == 2 and first["next_cursor"] is not None
        rest = (await client.get(f"/persons/{person}/records",
                                 params={"limit": 2, "cursor": first["next_cursor"]}, headers=DEV)).json()
        assert {r["record_id"] for r in first["records"] + rest["records"]} == {a1, a2, a3}
        assert rest["next_cursor"] is None
        assert {r["source"] for r in first["records"] + rest["records"]} == {f"hosp-a-{unique}", f"hosp-b-{unique}"}

        unknown = await client.get(f"/persons/{uuid.uuid4()}/records", headers=DEV)
        assert unknown.status_code == 404
        bad = await client.get("/persons/not-a-uuid/records", headers=DEV)
        assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
        assert (await client.get(f"/records/{uuid.uuid4()}/linkage", headers=DEV)).status_code == 404
        everything = "".join(str(v) for v in links.values()) + str(first) + str(rest)
    for value in ("Annabel", "Anabel", ssn, "1980-02-03", "1980-03-02"):
        assert value not in everything  # (the surname carries `unique`, as the source names do)


async def test_no_identifier_reaches_the_linkage_tables(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, canaries: dict[str, str]
) -> None:
    settings = make_settings(stack_env, **isolated_kafka)
    dsn = stack_env["DATABASE_URL"]
    patient = {"given_name": canaries["given_name"], "family_name": canaries["family_name"], "dob": canaries["dob"],
               "ssn": canaries["ssn"]}
    async with running_app(settings) as client:
        rid = await _ingest(client, unique, 1, {"source": f"canary-{unique}", "record_kind": "claim",
                                                "schema_hint": "partnerA.v1", "patient": patient,
                                                "payload": {"n": 1}})

        async def linked() -> bool:
            return await fetchval(dsn, "SELECT count(*) FROM record_persons WHERE record_id = $1::uuid", rid) == 1

        await eventually(linked, timeout=60)
    # Every column but the tokens themselves (HMAC output: random bytes, in which a short canary
    # such as a zip code would turn up by chance in hex).
    rows = await fetch(dsn, """
        SELECT concat_ws('|', t.record_id, length(t.token)) AS row FROM linkage_tokens t WHERE t.record_id = $1::uuid
        UNION ALL SELECT concat_ws('|', r.record_id, r.key_id, r.recipes::text, length(r.tokens) / 16)
        FROM record_linkage r WHERE r.record_id = $1::uuid
        UNION ALL SELECT concat_ws('|', rp.person_id, rp.fields) FROM record_persons rp
        WHERE rp.record_id = $1::uuid""", rid)
    assert len(rows) > 10
    text = "\n".join(r["row"] for r in rows).lower()
    for value in canaries.values():
        assert value.lower() not in text
    assert any(r["row"].endswith("|16") for r in rows)  # 16-byte digests
