"""DLQ pages: browse with filters, inspect one entry, reprocess it or resolve it with a reason.

The actions go through the admin service, as the HTTP API's do (same transaction, same audit
row), with one guard the API does not need: the entry must still be ``open``. A second submit
of the same form (a double click, a reload of a resent form, a colleague who acted first)
finds it reprocessed or resolved and is refused with a 409 page; nothing is done twice.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Template

from exchange.admin import ResolveRequest
from exchange.console._context import console_of, session_of
from exchange.console._forms import entry_id, from_form, optional_text
from exchange.console._render import page, see_other
from exchange.errors import ValidationFailed
from exchange.normalize import STAGES
from exchange.ops.logging import correlation_id_var

__all__ = ("dlq_entry", "dlq_list", "reprocess_entry", "resolve_entry")

PAGE = 50
STATUSES = ("open", "reprocessed", "resolved")
_NOTICES = {
    "reprocessed": "Reprocessed: the original event was re-emitted; the record goes through the pipeline again.",
    "resolved": "Resolved: the entry is closed with your reason.",
}


_EVENT_FIELDS = ("event_type", "event_version", "event_id", "occurred_at", "correlation_id", "source", "record_id",
                 "record_kind", "schema_hint")
_RAW_FIELDS = ("bucket", "key", "sha256", "size_bytes")


def _event_fields(original: Any) -> list[tuple[str, str]]:
    """The event's known fields only (where its raw object is, how to verify it): an event holds
    no patient data by contract, and a malformed one is not echoed, whatever it holds."""
    if isinstance(original, (str, bytes)):
        try:
            original = msgspec.json.decode(original)
        except msgspec.DecodeError:
            return []
    if not isinstance(original, dict):
        return []
    shown = [(name, str(original[name])) for name in _EVENT_FIELDS if isinstance(original.get(name), (str, int))]
    raw = original.get("raw_object")
    if isinstance(raw, dict):
        shown += [(f"raw_object.{name}", str(raw[name])) for name in _RAW_FIELDS
                  if isinstance(raw.get(name), (str, int))]
    return shown


def _choice(value: str | None, allowed: tuple[str, ...], field: str) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise ValidationFailed(f"{field}: must be one of {', '.join(allowed)}", field=field)
    return value


@get("/dlq", include_in_schema=False)
async def dlq_list(request: Request[Any, Any, Any]) -> Template:
    query = request.query_params
    filters = {
        "stage": _choice(query.get("stage"), STAGES, "stage"),
        "error_type": optional_text(query.get("error_type"), "error_type"),
        "status": _choice(query.get("status"), STATUSES, "status"),
    }
    before = entry_id(query.get("before"), "before") if query.get("before") else None
    console = console_of(request)
    entries = await console.admin.dlq.list(stage=filters["stage"], error_type=filters["error_type"],
                                           status=filters["status"], limit=PAGE + 1, before=before)
    await console.admin.audit(session_of(request).subject, "dlq.list", "dlq_event", None, "ok",
                              {"count": min(len(entries), PAGE)}, correlation_id_var.get())
    more = None
    if len(entries) > PAGE:
        entries = entries[:PAGE]
        more = "?" + urlencode({**{k: v for k, v in filters.items() if v}, "before": entries[-1]["id"]})
    return page(request, "dlq_list.html", entries=entries, filters=filters, stages=STAGES, statuses=STATUSES,
                more=more)


@get("/dlq/{entry:str}", include_in_schema=False)
async def dlq_entry(request: Request[Any, Any, Any], entry: FromPath[str]) -> Template:
    key = entry_id(entry)
    console = console_of(request)
    found = await console.admin.dlq.inspect(key)
    await console.admin.audit(session_of(request).subject, "dlq.inspect", "dlq_event", str(key), "ok",
                              correlation_id=correlation_id_var.get())
    return page(request, "dlq_entry.html", entry=found, event=_event_fields(found.get("original_event")),
                notice=_NOTICES.get(request.query_params.get("notice", "")))


@post("/dlq/{entry:str}/reprocess", include_in_schema=False, status_code=303)
async def reprocess_entry(request: Request[Any, Any, Any], entry: FromPath[str]) -> Response[Any]:
    key = entry_id(entry)
    await console_of(request).admin.dlq_reprocess(key, session_of(request).subject, expect_status=("open",))
    return see_other(f"/console/dlq/{key}?notice=reprocessed")


@post("/dlq/{entry:str}/resolve", include_in_schema=False, status_code=303)
async def resolve_entry(request: Request[Any, Any, Any], entry: FromPath[str]) -> Response[Any]:
    key = entry_id(entry)
    data = from_form(await request.form(), ResolveRequest, fields=("reason",))
    await console_of(request).admin.dlq_resolve(key, session_of(request).subject, data.reason,
                                                expect_status=("open",))
    return see_other(f"/console/dlq/{key}?notice=resolved")
