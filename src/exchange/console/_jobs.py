"""Job pages: recent runs, forms that start a replay, verify, reconcile or derive job, and a
job's page, which reloads itself every two seconds while the job is queued or running."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Template

from exchange.admin import DeriveJobRequest, JobKind, ReconcileJobRequest, ReplayJobRequest, VerifyJobRequest
from exchange.console._context import console_of, session_of
from exchange.console._forms import from_form
from exchange.console._render import page, see_other
from exchange.errors import InvalidRequest
from exchange.query import checked_uuid

__all__ = ("job_page", "jobs_list", "start_job")

PAGE = 50
_FORMS: dict[str, tuple[type[msgspec.Struct], tuple[str, ...], tuple[str, ...]]] = {
    "replay": (ReplayJobRequest, ("source", "limit", "emit_version"), ("dry_run",)),
    "verify": (VerifyJobRequest, ("source",), ()),
    "reconcile": (ReconcileJobRequest, ("source",), ("repair",)),
    "derive": (DeriveJobRequest, ("dataset",), ("verify", "dry_run")),
}

_KINDS: dict[str, JobKind] = {"replay": "replay", "verify": "verify", "reconcile": "reconcile"}


@get("/jobs", include_in_schema=False)
async def jobs_list(request: Request[Any, Any, Any]) -> Template:
    before = request.query_params.get("before")
    before = checked_uuid(before, "before") if before else None
    runs = await console_of(request).admin.jobs.recent(PAGE + 1, before=before)
    more = f"?before={runs[PAGE - 1].job_run_id}" if len(runs) > PAGE else None
    return page(request, "jobs.html", runs=runs[:PAGE], more=more)


@post("/jobs/{kind:str}", include_in_schema=False, status_code=303)
async def start_job(request: Request[Any, Any, Any], kind: FromPath[str]) -> Response[Any]:
    if kind not in _FORMS:
        raise InvalidRequest(f"no such job kind; the console starts {', '.join(_FORMS)}", status=404)
    struct, fields, checkboxes = _FORMS[kind]
    data = from_form(await request.form(), struct, fields=fields, checkboxes=checkboxes)
    job_kind: JobKind
    if isinstance(data, DeriveJobRequest):  # as the API: a verify of a dataset is a job of its own
        job_kind = "derive-verify" if data.verify else "derive"
        params = {"dataset": data.dataset} if data.verify else {
            "dataset": data.dataset, "dry_run": data.dry_run, "batch_size": data.batch_size}
    else:
        job_kind, params = _KINDS[kind], msgspec.to_builtins(data)
    admin = console_of(request).admin
    job = await admin.create_job(job_kind, params, session_of(request).subject)
    admin.start_in_background(job)
    return see_other(f"/console/jobs/{job.job_run_id}")


@get("/jobs/{job_id:str}", include_in_schema=False)
async def job_page(request: Request[Any, Any, Any], job_id: FromPath[str]) -> Template:
    key = checked_uuid(job_id, "job_id")
    job = await console_of(request).admin.jobs.get(key)
    if job is None:
        raise InvalidRequest(f"no job {key}", status=404)
    running = job.status in ("queued", "running")
    total = job.progress.get("total")
    done = job.progress.get("done", job.progress.get("scanned"))
    bar = (int(done), int(total)) if isinstance(total, int) and isinstance(done, int) and total > 0 else None
    return page(request, "job.html", job=job, refresh_s=2 if running else None, bar=bar)
