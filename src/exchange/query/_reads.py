"""The query context's SQL: canonical records by id, by source and time range, by patient token,
and counts -- each a keyset page or a batch, one statement each.

``Reads`` is made per request: it counts the statements it ran (the GraphQL layer's N+1 guard,
reported as a metric) and takes a pooled connection per statement, so DataLoader batches that
run concurrently never share one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from exchange.adapters.postgres import Connection, Database
from exchange.events import NIL_UUID
from exchange.query._cursor import Cursor

__all__ = ("STATEMENTS", "Page", "RecordRow", "Reads")

P = ParamSpec("P")
T = TypeVar("T")

# Columns are qualified (``r.``): an unqualified ``ORDER BY record_id`` would name the output
# column, the text, and the index's uuid order would need a sort on top.
_COLUMNS = ("r.record_id::text AS record_id, r.source, r.event_version, r.record_kind, r.schema_hint, r.ingested_at, "
            "r.normalized_at")
_FROM_CANONICAL = f"SELECT {_COLUMNS}, r.normalized->>'patient_token' AS patient_token FROM canonical_records r"
_BY_IDS = f"{_FROM_CANONICAL} WHERE r.record_id = ANY($1::uuid[])"
# Keyset pages: the row comparison is an index condition on (source | patient_token, ingested_at,
# record_id), so a page costs its own rows whatever page it is (migration 0005).
_BY_SOURCE = f"""
{_FROM_CANONICAL}
WHERE r.source = $1 AND r.ingested_at >= $2 AND r.ingested_at < $3 AND (r.ingested_at, r.record_id) > ($4, $5::uuid)
ORDER BY r.ingested_at, r.record_id LIMIT $6
"""
_BY_TOKEN = f"""
SELECT {_COLUMNS}, r.patient_token FROM derived_patient_record_index r
WHERE r.patient_token = $1 AND (r.ingested_at, r.record_id) > ($2, $3::uuid)
ORDER BY r.ingested_at, r.record_id LIMIT $4
"""
# The original schema's encounters: v2 records of kind encounter, v1 records of record_type encounter.
_ENCOUNTERS = """
SELECT d.record_id::text AS record_id, d.source, d.event_version, d.record_kind, d.schema_hint, d.ingested_at,
       d.normalized_at, d.patient_token
FROM derived_patient_record_index d JOIN canonical_records c ON c.record_id = d.record_id
WHERE d.patient_token = $1 AND coalesce(d.record_kind, c.normalized #>> '{meta,record_type}') = 'encounter'
ORDER BY d.ingested_at, d.record_id LIMIT $2
"""
_COUNT_SOURCE = "SELECT count(*) FROM canonical_records WHERE source = $1 AND ingested_at >= $2 AND ingested_at < $3"
_COUNT_TOKENS = """
SELECT patient_token, count(*) AS n FROM derived_patient_record_index WHERE patient_token = ANY($1::text[])
GROUP BY patient_token
"""
_CORRELATION = "SELECT correlation_id FROM canonical_records WHERE record_id = $1::uuid"

STATEMENTS: dict[str, str] = {
    "by_ids": _BY_IDS, "source_page": _BY_SOURCE, "token_page": _BY_TOKEN, "encounters": _ENCOUNTERS,
    "source_count": _COUNT_SOURCE, "token_counts": _COUNT_TOKENS,
}
"""The statements by name, for the benchmark's EXPLAIN of each (no sequential scan at 1 M rows)."""

_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)
_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class RecordRow:
    """A canonical record as every read answers it: a token and metadata, never an identifier."""

    record_id: str
    source: str
    event_version: str
    record_kind: str | None
    schema_hint: str | None
    ingested_at: dt.datetime
    normalized_at: dt.datetime
    patient_token: str

    def jsonable(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "source": self.source, "event_version": self.event_version,
                "record_kind": self.record_kind, "schema_hint": self.schema_hint,
                "ingested_at": self.ingested_at.isoformat(), "normalized_at": self.normalized_at.isoformat(),
                "patient_token": self.patient_token}


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[RecordRow]
    next_cursor: str | None


def _rows(found: Sequence[Any]) -> list[RecordRow]:
    return [RecordRow(*r) for r in found]


def _time_page(found: list[RecordRow], limit: int) -> Page:
    """``limit + 1`` rows were asked for: the extra one only says there is a next page."""
    if len(found) <= limit:
        return Page(found, None)
    last = found[limit - 1]
    return Page(found[:limit], Cursor.after_row("t", last.record_id, last.ingested_at).encode())


class Reads:
    """The statements of one request (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.statements = 0

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        self.statements += 1
        async with self._db.connection() as conn:
            rows: list[Any] = await conn.fetch(sql, *args)
        return rows

    async def connection_run(self, fn: Callable[Concatenate[Connection, P], Awaitable[T]], *args: P.args,
                             **kwargs: P.kwargs) -> T:
        """Run another context's read ``fn(conn, ...)`` (one statement) on a pooled connection."""
        self.statements += 1
        async with self._db.connection() as conn:
            return await fn(conn, *args, **kwargs)

    async def by_ids(self, record_ids: Sequence[str]) -> dict[str, RecordRow]:
        return {row.record_id: row for row in _rows(await self._fetch(_BY_IDS, list(record_ids)))}

    async def correlation_id(self, record_id: str) -> str | None:
        rows = await self._fetch(_CORRELATION, record_id)
        return str(rows[0][0]) if rows else None

    async def by_source(self, source: str, *, since: dt.datetime | None, until: dt.datetime | None,
                        after: Cursor | None, limit: int) -> Page:
        at, rid = (after.ingested_at, str(after.record_id)) if after is not None else (_EARLIEST, NIL_UUID)
        found = _rows(await self._fetch(_BY_SOURCE, source, since or _EARLIEST, until or _LATEST, at, rid,
                                        limit + 1))
        return _time_page(found, limit)

    async def by_patient_token(self, token: str, *, after: Cursor | None, limit: int) -> Page:
        at, rid = (after.ingested_at, str(after.record_id)) if after is not None else (_EARLIEST, NIL_UUID)
        return _time_page(_rows(await self._fetch(_BY_TOKEN, token, at, rid, limit + 1)), limit)

    async def encounters(self, token: str, *, limit: int) -> list[RecordRow]:
        return _rows(await self._fetch(_ENCOUNTERS, token, limit))

    async def count_by_source(self, source: str, *, since: dt.datetime | None, until: dt.datetime | None) -> int:
        rows = await self._fetch(_COUNT_SOURCE, source, since or _EARLIEST, until or _LATEST)
        return int(rows[0][0])

    async def count_by_tokens(self, tokens: Sequence[str]) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in await self._fetch(_COUNT_TOKENS, list(tokens))}
