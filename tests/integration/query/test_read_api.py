"""The read API returns tokens and metadata and links records of one person."""

from __future__ import annotations

import uuid

from tests.support.app import DEV, bearer, make_settings, running_app
from tests.support.db import eventually, fetchval


async def test_records_are_read_by_id_and_linked_by_patient_token(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, canaries: dict[str, str]
) -> None:
    settings = make_settings(stack_env, **isolated_kafka)
    source = f"q-{unique}"
    v1 = {"source": source, "record_type": "encounter",
          "patient": {"first_name": canaries["given_name"], "last_name": canaries["family_name"],
                      "dob": canaries["dob"], "ssn": canaries["ssn"]}, "payload": {"a": 1}}
    v2 = {"source": source, "record_kind": "claim", "schema_hint": "partnerB.v1",
          "patient": {"given_name": canaries["given_name"], "family_name": canaries["family_name"],
                      "dob": canaries["dob"], "ssn": canaries["ssn"]}, "payload": {"b": 2}}
    async with running_app(settings) as client:
        r1 = await client.post("/v1/ingest", json=v1, headers={**DEV, "Idempotency-Key": f"{unique}-1"})
        r2 = await client.post("/v2/ingest", json=v2, headers={**DEV, "Idempotency-Key": f"{unique}-2"})
        ids = [r1.json()["record_id"], r2.json()["record_id"]]

        async def both() -> bool:
            n = await fetchval(stack_env["DATABASE_URL"], "SELECT count(*) FROM canonical_records WHERE source=$1",
                               source)
            return bool(n == 2)

        await eventually(both, timeout=30)
        reader = bearer(settings, scopes="read")
        assert (await client.get(f"/records/{ids[0]}")).status_code == 401
        writer = bearer(settings, scopes="ingest:write")
        assert (await client.get(f"/records/{ids[0]}", headers=writer)).status_code == 403
        one = await client.get(f"/records/{ids[0]}", headers=reader)
        assert one.status_code == 200
        record = one.json()
        assert record["event_version"] == "1"
        token = record["patient_token"]
        linked = await client.get(f"/patients/{token}/records", headers=reader)
        # The canaries are one synthetic person shared by many tests: keep this test's records.
        ours = [r["record_id"] for r in linked.json()["records"] if r["source"] == source]
        assert ours == ids
        assert (await client.get(f"/records/{uuid.uuid4()}", headers=reader)).status_code == 404
        assert (await client.get("/records/nope", headers=reader)).status_code == 400
        assert (await client.get("/patients/XYZ/records", headers=reader)).status_code == 400
        for value in canaries.values():
            assert value not in one.text
            assert value not in linked.text
