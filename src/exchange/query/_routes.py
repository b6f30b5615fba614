"""Read API over canonical records (scope ``read``): tokens and metadata, never identifiers."""

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
from exchange.persons import latest_model, person_records, record_linkage, surviving_person
from exchange.web import authenticated

__all__ = ("query_routes",)


def _read(*errors: int) -> dict[str, Any]:
    return {**authenticated("read", 400, 503, *errors), "tags": ["query"]}


_TOKEN = re.compile(r"^[0-9a-f]{64}$")
MAX_PAGE = 1000

_RECORD = """
SELECT record_id::text AS record_id, source, event_version, record_kind, schema_hint, ingested_at, normalized_at,
       correlation_id, normalized
FROM canonical_records WHERE record_id = $1
"""
_BY_PATIENT = """
SELECT record_id::text AS record_id, source, event_version, record_kind, schema_hint, ingested_at, normalized_at
FROM derived_patient_record_index WHERE patient_token = $1
ORDER BY ingested_at, record_id LIMIT $2
"""


def _jsonable(row: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in dict(row).items()}


def _db(state: State) -> Database:
    db: Database = state.runtime.db
    return db


@get("/records/{record_id:str}", summary="One canonical record (token and metadata only)", **_read(404))
async def get_record(state: State, record_id: FromPath[str]) -> dict[str, Any]:
    try:
        key = uuid.UUID(record_id)
    except ValueError:
        raise ValidationFailed("record_id: must be a UUID", field="record_id") from None
    async with _db(state).connection() as conn:
        row = await conn.fetchrow(_RECORD, key)
    if row is None:
        raise InvalidRequest(f"no canonical record {key}", status=404, type_slug="not-found")
    record = _jsonable(row)
    normalized = record.pop("normalized")
    record["patient_token"] = normalized["patient_token"]
    record["meta"] = normalized["meta"]
    return record


@get("/patients/{patient_token:str}/records", summary="Records linked to one patient token", **_read())
async def records_for_patient(
    state: State,
    patient_token: FromPath[str],
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    if not _TOKEN.match(patient_token):
        raise ValidationFailed("patient_token: must be 64 lower-case hex characters", field="patient_token")
    async with _db(state).connection() as conn:
        rows = await conn.fetch(_BY_PATIENT, patient_token, limit)
    return {"patient_token": patient_token, "records": [_jsonable(r) for r in rows]}


def _uuid(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValidationFailed(f"{field}: must be a UUID", field=field) from None


@get("/records/{record_id:str}/linkage", summary="A record's person and the token agreements behind it", **_read(404))
async def record_linkage_route(state: State, record_id: FromPath[str]) -> dict[str, Any]:
    key = _uuid(record_id, "record_id")
    async with _db(state).connection() as conn:
        model = await latest_model(conn)
        found = await record_linkage(conn, key, model)
    if found is None:
        raise InvalidRequest(f"no person for record {key}", status=404, type_slug="not-found")
    return {"record_id": found.record_id, "person_id": found.person_id, "fields": found.fields,
            "key_ids": found.key_ids, "linked_at": found.linked_at.isoformat(),
            "threshold_bits": round(model.threshold, 2), "agreements": found.agreements}


@get("/persons/{person_id:str}/records", summary="A person's records, a page at a time", **_read(404))
async def records_for_person(
    state: State,
    person_id: FromPath[str],
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, QueryParameter(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    key = _uuid(person_id, "person_id")
    after = _uuid(cursor, "cursor") if cursor is not None else None
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


query_routes = (get_record, records_for_patient, record_linkage_route, records_for_person)
