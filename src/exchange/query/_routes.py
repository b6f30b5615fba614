"""Read API over canonical records (scope ``read``): tokens and metadata, never identifiers.

Every list is a keyset page (``cursor`` = the previous page's ``next_cursor``; never an
offset) of at most ``MAX_PAGE`` records.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any

from litestar import get
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter

from exchange.adapters.postgres import Database
from exchange.errors import InvalidRequest, ValidationFailed
from exchange.events import SOURCE_PATTERN
from exchange.persons import latest_model, person_records, record_linkage, surviving_person
from exchange.query._cursor import MAX_PAGE, Cursor
from exchange.query._params import checked_token, checked_uuid, instant
from exchange.query._reads import Reads
from exchange.query._status_route import record_status_route
from exchange.web import NO_NUL, authenticated

__all__ = ("query_routes", "status_routes")


def _read(*errors: int) -> dict[str, Any]:
    return {**authenticated("read", 400, 503, *errors), "tags": ["query"]}


_SOURCE = re.compile(SOURCE_PATTERN)
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description=f"records per page, at most {MAX_PAGE}")]
CursorParam = Annotated[str | None, QueryParameter(max_length=200, pattern=NO_NUL,
                                                   description="next_cursor of the previous page")]

_RECORD = """
SELECT record_id::text AS record_id, source, event_version, record_kind, schema_hint, ingested_at, normalized_at,
       correlation_id, normalized
FROM canonical_records WHERE record_id = $1
"""


def _jsonable(row: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in dict(row).items()}


def _db(state: State) -> Database:
    db: Database = state.runtime.db
    return db


@get("/records/{record_id:str}", summary="One canonical record (token and metadata only)", **_read(404))
async def get_record(state: State, record_id: FromPath[str]) -> dict[str, Any]:
    key = uuid.UUID(checked_uuid(record_id, "record_id"))
    async with _db(state).connection() as conn:
        row = await conn.fetchrow(_RECORD, key)
    if row is None:
        raise InvalidRequest(f"no canonical record {key}", status=404, type_slug="not-found")
    record = _jsonable(row)
    normalized = record.pop("normalized")
    record["patient_token"] = normalized["patient_token"]
    record["meta"] = normalized["meta"]
    return record


@get("/patients/{patient_token:str}/records", summary="Records linked to one patient token, a page at a time",
     **_read())
async def records_for_patient(state: State, patient_token: FromPath[str], limit: Limit = 100,
                              cursor: CursorParam = None) -> dict[str, Any]:
    checked_token(patient_token, "patient_token")
    after = Cursor.decode(cursor, "t", "cursor") if cursor is not None else None
    page = await Reads(_db(state)).by_patient_token(patient_token, after=after, limit=limit)
    return {"patient_token": patient_token, "records": [r.jsonable() for r in page.rows],
            "next_cursor": page.next_cursor}


@get("/sources/{source:str}/records", summary="A source's records in a time range, a page at a time",
     description="Ordered by ingestion time, then record id; `since` inclusive, `until` exclusive.", **_read())
async def records_for_source(
    state: State,
    source: FromPath[str],
    limit: Limit = 100,
    cursor: CursorParam = None,
    since: Annotated[dt.datetime | None, QueryParameter(description="from this instant (inclusive)")] = None,
    until: Annotated[dt.datetime | None, QueryParameter(description="before this instant")] = None,
) -> dict[str, Any]:
    if not _SOURCE.match(source):
        raise ValidationFailed("source: does not match the required pattern", field="source")
    after = Cursor.decode(cursor, "t", "cursor") if cursor is not None else None
    page = await Reads(_db(state)).by_source(source, since=instant(since, "since"), until=instant(until, "until"),
                                             after=after, limit=limit)
    return {"source": source, "records": [r.jsonable() for r in page.rows], "next_cursor": page.next_cursor}


@get("/records/{record_id:str}/linkage", summary="A record's person and the token agreements behind it (first 100)",
     **_read(404))
async def record_linkage_route(state: State, record_id: FromPath[str]) -> dict[str, Any]:
    key = checked_uuid(record_id, "record_id")
    async with _db(state).connection() as conn:
        model = await latest_model(conn)
        found = await record_linkage(conn, key, model)
    if found is None:
        raise InvalidRequest(f"no person for record {key}", status=404, type_slug="not-found")
    return {"record_id": found.record_id, "person_id": found.person_id, "fields": found.fields,
            "key_ids": found.key_ids, "linked_at": found.linked_at.isoformat(),
            "threshold_bits": round(model.threshold, 2), "agreements": found.agreements}


@get("/persons/{person_id:str}/records", summary="A person's records, a page at a time", **_read(404))
async def records_for_person(state: State, person_id: FromPath[str], limit: Limit = 100,
                             cursor: CursorParam = None) -> dict[str, Any]:
    key = checked_uuid(person_id, "person_id")
    after = checked_uuid(cursor, "cursor") if cursor is not None else None  # a record id: this list's order
    async with _db(state).connection() as conn:
        survivor = await surviving_person(conn, key)
        if survivor is None:
            raise InvalidRequest(f"no person {key}", status=404, type_slug="not-found")
        rows = await person_records(conn, survivor, after=after, limit=limit)
    page = {"person_id": survivor, "records": [_jsonable(r) for r in rows],
            "next_cursor": rows[-1]["record_id"] if len(rows) == limit else None}
    if survivor != key:
        page["merged_from"] = key  # the id asked for was merged into this person
    return page


query_routes = (get_record, records_for_patient, records_for_source, record_linkage_route, records_for_person)
status_routes = (record_status_route,)
