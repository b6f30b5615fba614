"""The console's routes under ``/console``, its guard, its error pages and its templates."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from litestar import Response, Router, get
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template import TemplateConfig

from exchange.console._dlq import dlq_entry, dlq_list, reprocess_entry, resolve_entry
from exchange.console._guard import console_guard
from exchange.console._jobs import job_page, jobs_list, start_job
from exchange.console._login import login_form, login_submit, logout
from exchange.console._overview import overview
from exchange.console._records import record_page, record_search
from exchange.console._render import HEADERS, console_exception_handlers
from exchange.console._text import register_filters

__all__ = ("console_router", "console_templates")

_PACKAGE = resources.files("exchange.console")
_CSS = (_PACKAGE / "static" / "console.css").read_bytes()


@get("/static/console.css", opt={"console_public": True}, include_in_schema=False, media_type="text/css")
async def stylesheet() -> Response[bytes]:
    return Response(_CSS, media_type="text/css", headers={**HEADERS, "Cache-Control": "max-age=3600"})


def console_router() -> Router:
    return Router(
        path="/console",
        route_handlers=[login_form, login_submit, logout, overview, dlq_list, dlq_entry, reprocess_entry,
                        resolve_entry, jobs_list, start_job, job_page, record_search, record_page, stylesheet],
        before_request=console_guard,
        exception_handlers=console_exception_handlers,
        include_in_schema=False,
    )


def _engine(engine: JinjaTemplateEngine) -> None:
    register_filters(engine.engine)


def console_templates() -> TemplateConfig[Any]:
    directory = Path(str(_PACKAGE / "templates"))
    return TemplateConfig(directory=directory, engine=JinjaTemplateEngine, engine_callback=_engine)

