"""Admin HTTP API (scope ``admin``): jobs and DLQ tooling, the same operations as the CLI.

Every parameter is bounded at the door, so nothing the database or the job would fail on gets
past it: ids within ``bigint``, text without NUL (PostgreSQL cannot store it), job windows and
limits within ranges the job's arithmetic takes, times that have a UTC instant. Out of range
is a 400 naming the parameter.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter, QueryParameter

from exchange.admin._requests import (
    DeriveJobRequest,
    ReconcileJobRequest,
    ReplayJobRequest,
    ResolveRequest,
    VerifyJobRequest,
)
from exchange.admin._service import AdminService, JobKind
from exchange.errors import InvalidRequest, ValidationFailed
from exchange.normalize import DlqEntryNotFound, NotReprocessable
from exchange.ops.logging import correlation_id_var
from exchange.web import BIGINT_MAX, NO_NUL, authenticated, principal_of

__all__ = ("admin_routes",)

EntryId = Annotated[int, Parameter(ge=1, le=BIGINT_MAX, description="A dlq_events id")]
Filter = Annotated[str | None, Parameter(max_length=200, pattern=NO_NUL)]


def _admin(*errors: int, described: dict[int, str] | None = None) -> dict[str, Any]:
    """Decorator keywords of an admin route: the scope, the tag, and the errors it answers
    besides 400 (every admin route validates something), 401, 403 and 503."""
    return {**authenticated("admin", 400, 503, *errors, described=described), "tags": ["admin"]}


_JOB = _admin(413)
_ENTRY = {404: "No DLQ entry with this id"}


class NotFound(InvalidRequest):
    def __init__(self, detail: str) -> None:
        super().__init__(detail, status=404, type_slug="not-found")


def _instant(moment: dt.datetime | None) -> dt.datetime | None:
    """``since`` as a UTC instant (a time without an offset is taken as UTC); one that has none
    (year 1 at +01:00 is before the first instant a timestamp holds) is a 400."""
    if moment is None:
        return None
    try:
        return (moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except OverflowError:
        raise ValidationFailed("since: not a time that has a UTC instant", field="since") from None


async def _start(admin: AdminService, request: Request[Any, Any, Any], kind: JobKind,
                 params: dict[str, Any]) -> Response[dict[str, Any]]:
    job = await admin.create_job(kind, params, principal_of(request).subject)
    admin.start_in_background(job)
    return Response({"job_id": job.job_run_id, "status": "queued", "job_name": kind}, status_code=202,
                    headers={"Location": f"/admin/jobs/{job.job_run_id}"})


@post("/admin/jobs/replay", status_code=202, summary="Start a replay job", **_JOB)
async def start_replay(request: Request[Any, Any, Any], data: JSONBody[ReplayJobRequest],
                       admin_service: NamedDependency[AdminService]) -> Response[dict[str, Any]]:
    return await _start(admin_service, request, "replay", msgspec.to_builtins(data))


@post("/admin/jobs/verify", status_code=202, summary="Start a verify job (raw vs canonical)", **_JOB)
async def start_verify(request: Request[Any, Any, Any], data: JSONBody[VerifyJobRequest],
                       admin_service: NamedDependency[AdminService]) -> Response[dict[str, Any]]:
    return await _start(admin_service, request, "verify", msgspec.to_builtins(data))


@post("/admin/jobs/reconcile", status_code=202, summary="Start a reconcile job (optionally repair)", **_JOB)
async def start_reconcile(request: Request[Any, Any, Any], data: JSONBody[ReconcileJobRequest],
                          admin_service: NamedDependency[AdminService]) -> Response[dict[str, Any]]:
    return await _start(admin_service, request, "reconcile", msgspec.to_builtins(data))


@post("/admin/jobs/derive", status_code=202, summary="Rebuild a derived dataset (or verify it)", **_JOB)
async def start_derive(request: Request[Any, Any, Any], data: JSONBody[DeriveJobRequest],
                       admin_service: NamedDependency[AdminService]) -> Response[dict[str, Any]]:
    if data.verify:
        return await _start(admin_service, request, "derive-verify", {"dataset": data.dataset})
    params = {"dataset": data.dataset, "dry_run": data.dry_run, "batch_size": data.batch_size}
    return await _start(admin_service, request, "derive", params)


@get("/admin/jobs/{job_id:str}", summary="A job's state, progress and result",
     **_admin(404, described={404: "No job with this id"}))
async def get_job(request: Request[Any, Any, Any], job_id: FromPath[str],
                  admin_service: NamedDependency[AdminService]) -> dict[str, Any]:
    job = await admin_service.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job.as_dict()


@get("/admin/dlq", summary="List DLQ entries", **_admin())
async def list_dlq(
    request: Request[Any, Any, Any],
    admin_service: NamedDependency[AdminService],
    topic: Filter = None,
    stage: Filter = None,
    error_type: Filter = None,
    status: FromQuery[Literal["open", "reprocessed", "resolved"] | None] = None,
    since: FromQuery[dt.datetime | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    entries = await admin_service.dlq.list(topic=topic, stage=stage, error_type=error_type, status=status,
                                           since=_instant(since), limit=limit)
    await admin_service.audit(principal_of(request).subject, "dlq.list", "dlq_event", None, "ok",
                              {"count": len(entries)}, correlation_id_var.get())
    return {"entries": entries}


@get("/admin/dlq/report", summary="DLQ counts by stage, error type and status", **_admin())
async def dlq_report(request: Request[Any, Any, Any], admin_service: NamedDependency[AdminService],
                     hours: Annotated[int, QueryParameter(ge=1, le=24 * 90)] = 24) -> dict[str, Any]:
    return await admin_service.dlq.report(hours)


@get("/admin/dlq/{entry_id:int}", summary="One DLQ entry with its ledger history", **_admin(404, described=_ENTRY))
async def inspect_dlq(request: Request[Any, Any, Any], entry_id: EntryId,
                      admin_service: NamedDependency[AdminService]) -> dict[str, Any]:
    try:
        entry = await admin_service.dlq.inspect(entry_id)
    except DlqEntryNotFound:
        raise NotFound(f"no DLQ entry {entry_id}") from None
    await admin_service.audit(principal_of(request).subject, "dlq.inspect", "dlq_event", str(entry_id), "ok",
                              correlation_id=correlation_id_var.get())
    return entry


@post("/admin/dlq/{entry_id:int}/reprocess", status_code=202, summary="Re-emit the original event",
      **_admin(404, 409, described={**_ENTRY, 409: "The original event cannot be decoded: fix and replay the source"}))
async def reprocess_dlq(request: Request[Any, Any, Any], entry_id: EntryId,
                        admin_service: NamedDependency[AdminService]) -> dict[str, Any]:
    try:
        return await admin_service.dlq_reprocess(entry_id, principal_of(request).subject)
    except DlqEntryNotFound:
        raise NotFound(f"no DLQ entry {entry_id}") from None
    except NotReprocessable as exc:
        raise InvalidRequest(str(exc), status=409, type_slug="not-reprocessable") from None


@post("/admin/dlq/{entry_id:int}/resolve", status_code=200, summary="Close a DLQ entry by hand",
      **_admin(404, 413, described=_ENTRY))
async def resolve_dlq(request: Request[Any, Any, Any], entry_id: EntryId, data: JSONBody[ResolveRequest],
                      admin_service: NamedDependency[AdminService]) -> dict[str, Any]:
    try:
        return await admin_service.dlq_resolve(entry_id, principal_of(request).subject, data.reason)
    except DlqEntryNotFound:
        raise NotFound(f"no DLQ entry {entry_id}") from None


admin_routes = (start_replay, start_verify, start_reconcile, start_derive, get_job, list_dlq, dlq_report, inspect_dlq,
                reprocess_dlq, resolve_dlq)
