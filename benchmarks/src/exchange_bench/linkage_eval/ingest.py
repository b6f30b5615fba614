"""Every record through ``POST /v2/ingest``, concurrently over kept-alive connections.

Each record has its own Idempotency-Key, so a request that got no answer, or a 503, is sent
again as is (the same key and body yield the same record). Refused records are sent too: the
service's 400s are counted against the mapping's refusals.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from exchange_bench._http import Connection

__all__ = ("Answer", "Ingested", "Outgoing", "ingest")

_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: str
    """The caller's name for the record (a Febrl rec_id)."""
    idempotency_key: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    """The last HTTP status (0: no answer after every attempt)."""
    record_id: str | None
    """From the 202."""


@dataclass(frozen=True, slots=True)
class Ingested:
    answers: dict[str, Answer]
    started_at: float
    """Epoch seconds when the first request was sent."""
    ended_at: float
    """Epoch seconds when the last answer arrived."""


async def _send(conn: Connection, item: Outgoing, token: str) -> Answer:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": item.idempotency_key}
    status, payload = 0, b""
    for attempt in range(_ATTEMPTS):
        try:
            status, payload = await conn.post("/v2/ingest", item.body, headers)
        except (OSError, asyncio.IncompleteReadError):  # ConnectionError is an OSError
            await conn.close()
            status, payload = 0, b""
        if status not in (0, 503):
            break
        await asyncio.sleep(0.1 * 2**attempt)
    record_id = json.loads(payload)["record_id"] if status == 202 else None
    return Answer(status, record_id)


async def ingest(port: int, token: str, items: Sequence[Outgoing], concurrency: int) -> Ingested:
    """Send ``items`` in their order, ``concurrency`` in flight; every item's answer."""
    pending = iter(items)
    answers: dict[str, Answer] = {}

    async def worker() -> None:
        conn = Connection("127.0.0.1", port)
        try:
            for item in pending:  # shared by the workers: each item is taken once
                answers[item.key] = await _send(conn, item, token)
        finally:
            await conn.close()

    started = time.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Ingested(answers, started, time.time())
