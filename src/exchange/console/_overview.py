"""The overview: what ``/health/detailed`` knows, the outbox backlog, open DLQ entries and jobs."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from litestar import Request, get
from litestar.response import Template

from exchange.console._context import console_of
from exchange.console._render import page
from exchange.ops.health import detailed_health
from exchange.outbox import outbox_stats

__all__ = ("overview",)

T = TypeVar("T")


async def _or_error(work: Awaitable[T]) -> tuple[T | None, str | None]:
    """Each panel on its own: the database down must not blank the dependencies' panel."""
    try:
        return await work, None
    except Exception as exc:  # noqa: BLE001 - shown as the panel's error type, the page still answers
        return None, type(exc).__name__


@get("/", include_in_schema=False)
async def overview(request: Request[Any, Any, Any]) -> Template:
    admin = console_of(request).admin
    health = await detailed_health(request.app.state)
    outbox, outbox_error = await _or_error(outbox_stats(admin.db))
    dlq, dlq_error = await _or_error(admin.dlq.open_counts())
    jobs, jobs_error = await _or_error(admin.jobs.summary())
    lag = health["dependencies"].get("consumer", {})
    return page(request, "overview.html", health=health, outbox=outbox, outbox_error=outbox_error,
                dlq=sorted((dlq or {}).items(), key=lambda item: -item[1]), dlq_total=sum((dlq or {}).values()),
                dlq_error=dlq_error, jobs=jobs or [], jobs_error=jobs_error, lag=lag, refresh_s=15)
