from __future__ import annotations

import uuid

from tests.support.app import DEV, make_settings, running_app
from tests.support.db import eventually, fetchval


async def test_a_v1_record_flows_from_http_to_a_canonical_row(stack_env: dict[str, str]) -> None:
    settings = make_settings(stack_env)
    async with running_app(settings) as client:
        body = {"source": "smoke", "record_type": "encounter",
                "patient": {"first_name": "Sam", "last_name": "Lee", "dob": "1990-01-01"}, "payload": {"a": 1}}
        r = await client.post("/v1/ingest", json=body, headers={**DEV, "Idempotency-Key": f"smoke-{uuid.uuid4()}"})
        assert r.status_code == 202, r.text
        record_id = r.json()["record_id"]

        async def present() -> bool:
            n = await fetchval(stack_env["DATABASE_URL"], "SELECT count(*) FROM canonical_records WHERE record_id=$1",
                               uuid.UUID(record_id))
            return bool(n == 1)

        await eventually(present, timeout=30)
