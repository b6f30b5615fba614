"""Reading the run back: until every accepted record is canonical (or dead-lettered), then
each record's seed token and person through the query API.

The wait polls the run's database on one connection; the reads go over kept-alive HTTP with
the ``read`` scope. ``GET /records/{id}/linkage`` (a record's person) is read only when the
service's OpenAPI has it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from exchange_bench._http import Connection

__all__ = ("Pipeline", "Reads", "has_linkage_route", "read_field", "wait_canonical")

_LINKAGE_PATH = re.compile(r"^/records/\{[^/{}]+\}/linkage$")


@dataclass(frozen=True, slots=True)
class Pipeline:
    canonical: int
    dead_lettered: int
    last_canonical_at: float | None
    """Epoch seconds of the last canonical row (``normalized_at``), None without one."""


async def _pipeline(conn: asyncpg.Connection, ids: list[str]) -> Pipeline:
    row = await conn.fetchrow(
        "SELECT count(*) AS n, extract(epoch FROM max(normalized_at))::float8 AS last "
        "FROM canonical_records WHERE record_id = ANY($1::uuid[])", ids)
    dead = await conn.fetchval(
        "SELECT count(DISTINCT record_id) FROM dlq_events WHERE record_id = ANY($1::uuid[])", ids)
    return Pipeline(int(row["n"]), int(dead), row["last"])


async def wait_canonical(dsn: str, record_ids: Sequence[str], timeout_s: float, interval_s: float = 0.5) -> Pipeline:
    """Poll until every record is canonical or dead-lettered; TimeoutError naming the counts."""
    ids = list(record_ids)
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            state = await _pipeline(conn, ids)
            if state.canonical + state.dead_lettered >= len(ids):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout_s:.0f} s, {state.canonical} of {len(ids)} records canonical "
                                   f"and {state.dead_lettered} dead-lettered")
            await asyncio.sleep(interval_s)
    finally:
        await conn.close()


def has_linkage_route(port: int) -> bool:
    """Whether the server's OpenAPI document has ``GET /records/{record_id}/linkage``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/schema/openapi.json", timeout=30) as response:
        paths: dict[str, dict[str, object]] = json.load(response)["paths"]
    return any(_LINKAGE_PATH.match(path) and "get" in ops for path, ops in paths.items())


@dataclass(frozen=True, slots=True)
class Reads:
    values: dict[str, str | None]
    """record_id -> the field's value, for every record answered with 200."""
    failures: Counter[int]
    """HTTP statuses other than 200, counted (0: no answer)."""


async def read_field(port: int, token: str, record_ids: Sequence[str], path: str, field: str,
                     concurrency: int) -> Reads:
    """``GET path.format(record_id=...)`` for each record; ``field`` of each JSON answer."""
    pending = iter(record_ids)
    values: dict[str, str | None] = {}
    failures: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {token}"}

    async def worker() -> None:
        conn = Connection("127.0.0.1", port)
        try:
            for record_id in pending:
                try:
                    status, payload = await conn.get(path.format(record_id=record_id), headers)
                except (OSError, asyncio.IncompleteReadError):
                    await conn.close()
                    status, payload = 0, b""
                if status == 200:
                    values[record_id] = json.loads(payload)[field]
                else:
                    failures[status] += 1
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Reads(values, failures)
