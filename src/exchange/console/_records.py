"""A record's journey by id: accepted, stored, published, attempts, canonical or dead-lettered.

The query context's own journey (what ``GET /v1/records/{id}/status`` answers an admin):
metadata only, never an identifier, a payload or an error message. The page reloads itself
while the record is still on its way.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath
from litestar.response import Template

from exchange.adapters.jwt import Principal
from exchange.console._context import console_of, session_of
from exchange.console._render import page, see_other
from exchange.errors import InvalidRequest
from exchange.query import RecordNotFound, checked_uuid, record_journey

__all__ = ("record_page", "record_search")

_ON_ITS_WAY = frozenset({"accepted", "published", "processing", "retrying"})


@get("/records", include_in_schema=False)
async def record_search(request: Request[Any, Any, Any]) -> Response[Any]:
    wanted = request.query_params.get("record_id")
    if wanted and wanted.strip():
        return see_other(f"/console/records/{checked_uuid(wanted.strip(), 'record_id')}")
    return page(request, "records.html")


@get("/records/{record_id:str}", include_in_schema=False)
async def record_page(request: Request[Any, Any, Any], record_id: FromPath[str]) -> Template:
    key = checked_uuid(record_id, "record_id")
    admin = Principal(session_of(request).subject, frozenset({"admin"}))
    try:
        journey = await record_journey(console_of(request).admin.db, key, admin)
    except RecordNotFound:
        raise InvalidRequest(f"no record {key}", status=404) from None
    return page(request, "record.html", journey=journey, refresh_s=3 if journey.stage in _ON_ITS_WAY else None)
