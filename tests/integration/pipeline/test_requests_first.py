"""All roles in one process: while it serves requests, the normalizer goes in spaced waves.

Observed from the processing ledger: when each record's attempt started, and how many
records were being processed at one moment.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import uuid
from typing import Any

from exchange.runtime.load import BUSY_HOLD_S, SUSTAINED_S, WAVE_EVERY_S, WAVE_SIZE
from tests.integration.ingest._support import v1_body
from tests.support.app import DEV, make_settings, running_app
from tests.support.db import eventually, fetch, fetchval

BUSY_AT = 50
CONCURRENCY = 16  # below WAVE_SIZE: a wave takes what the normalizer asks for, at most


async def _ingest(client: Any, source: str, n: int, unique: str) -> None:
    async def one(i: int) -> None:
        r = await client.post("/v1/ingest", json=v1_body(source, payload={"i": i}),
                              headers={**DEV, "Idempotency-Key": f"{unique}-{source}-{i}"})
        assert r.status_code == 202, r.text

    await asyncio.gather(*(one(i) for i in range(n)))


async def _attempts(dsn: str, source: str, n: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """(started_at, ended_at) of every attempt, once all ``n`` records are canonical."""
    async def done() -> bool:
        return bool(await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE source = $1", source) == n)

    await eventually(done, timeout=60)
    rows = await fetch(
        dsn,
        "SELECT a.started_at, a.ended_at FROM processing_attempts a "
        "JOIN raw_object_manifest m USING (record_id) WHERE m.source = $1",
        source,
    )
    return [(r["started_at"], r["ended_at"]) for r in rows]


def _peak_overlap(attempts: list[tuple[dt.datetime, dt.datetime]]) -> int:
    # A sweep over start (+1) and end (-1) events; at equal times an end comes first.
    events = sorted([(s, 1) for s, _ in attempts] + [(e, -1) for _, e in attempts], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def _start_gaps(attempts: list[tuple[dt.datetime, dt.datetime]]) -> list[float]:
    """Seconds between consecutive distinct attempt starts."""
    starts = sorted({s for s, _ in attempts})
    return [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]


async def test_the_normalizer_goes_in_waves_while_requests_are_in_flight_and_not_after(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str
) -> None:
    settings = make_settings(stack_env, **isolated_kafka, NORMALIZER_YIELD_AT=str(BUSY_AT),
                             NORMALIZER_CONCURRENCY=str(CONCURRENCY))
    dsn = stack_env["DATABASE_URL"]
    busy, idle = f"busy-{unique}", f"idle-{uuid.uuid4().hex[:8]}"
    async with running_app(settings) as client:
        load = client.app.state["runtime"].request_load
        for _ in range(BUSY_AT):  # requests in flight for the whole first phase (e.g. slow uploads)
            load.enter()
        try:
            # Crowded on average too once a whole window has passed with them (SUSTAINED_S).
            async def crowded() -> bool:
                return bool(load.busy)

            await eventually(crowded, timeout=5 * SUSTAINED_S, interval=0.05)
            await _ingest(client, busy, 40, unique)
            during = await _attempts(dsn, busy, 40)
        finally:
            for _ in range(BUSY_AT):
                load.leave()
        assert _peak_overlap(during) <= min(WAVE_SIZE, CONCURRENCY)
        # 40 records in waves of at most 16, a wave at most every period: two pauses or more.
        assert sum(gap >= WAVE_EVERY_S * 0.8 for gap in _start_gaps(during)) >= 2

        assert load.in_flight == 0  # every request counted out again, errors included below
        r = await client.post("/v1/ingest", content=b"{", headers={**DEV, "Idempotency-Key": f"{unique}-bad"})
        assert r.status_code == 400
        assert load.in_flight == 0
        await asyncio.sleep(BUSY_HOLD_S * 1.5)  # the burst is over once it has been quiet that long
        assert not load.busy
        await _ingest(client, idle, 40, unique)  # 40 at once stay below the threshold
        after = await _attempts(dsn, idle, 40)
        assert _peak_overlap(after) > 2
        assert max(_start_gaps(after), default=0.0) < WAVE_EVERY_S * 0.8  # no waves: records go as they come
