"""All roles in one process: while it serves requests, the normalizer narrows to a trickle.

Observed from the processing ledger: how many records were being processed at one moment.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from exchange.runtime.load import TRICKLE_SLOTS
from tests.integration.ingest._support import v1_body
from tests.support.app import DEV, make_settings, running_app
from tests.support.db import eventually, fetch, fetchval


async def _ingest(client: Any, source: str, n: int, unique: str) -> None:
    async def one(i: int) -> None:
        r = await client.post("/v1/ingest", json=v1_body(source, payload={"i": i}),
                              headers={**DEV, "Idempotency-Key": f"{unique}-{source}-{i}"})
        assert r.status_code == 202, r.text

    await asyncio.gather(*(one(i) for i in range(n)))


async def _peak_overlap(dsn: str, source: str, n: int) -> int:
    async def done() -> bool:
        return bool(await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE source = $1", source) == n)

    await eventually(done, timeout=60)
    rows = await fetch(
        dsn,
        "SELECT a.started_at, a.ended_at FROM processing_attempts a "
        "JOIN raw_object_manifest m USING (record_id) WHERE m.source = $1",
        source,
    )
    # A sweep over start (+1) and end (-1) events; at equal times an end comes first.
    events = sorted([(r["started_at"], 1) for r in rows] + [(r["ended_at"], -1) for r in rows],
                    key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


async def test_the_normalizer_trickles_while_requests_are_in_flight_and_not_after(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    settings = make_settings(stack_env, **isolated_kafka, NORMALIZER_YIELD_AT="1", NORMALIZER_CONCURRENCY="16")
    dsn = stack_env["DATABASE_URL"]
    busy, idle = f"busy-{unique}", f"idle-{uuid.uuid4().hex[:8]}"
    async with running_app(settings) as client:
        load = client.app.state["runtime"].request_load
        load.enter()  # a request in flight for the whole first phase (e.g. a slow upload)
        try:
            await _ingest(client, busy, 40, unique)
            assert await _peak_overlap(dsn, busy, 40) <= TRICKLE_SLOTS
        finally:
            load.leave()
        assert load.in_flight == 0  # every request counted out again, errors included below
        r = await client.post("/v1/ingest", content=b"{", headers={**DEV, "Idempotency-Key": f"{unique}-bad"})
        assert r.status_code == 400
        assert load.in_flight == 0
        await _ingest(client, idle, 40, unique)
        assert await _peak_overlap(dsn, idle, 40) > TRICKLE_SLOTS
