"""OpenAPI for routes Litestar serves but does not describe (ASGI handlers).

Litestar documents its HTTP route handlers only. A route served as an ASGI handler (the
ingest routes, ADR 0004) is described by an HTTP route handler that is never registered for
serving: ``describe`` has Litestar generate those descriptions in an app of their own and
adds their paths and component schemas to the served app's document. Only public API is
used (``Litestar.openapi_schema``); the document is built once, here, instead of at its
first request.
"""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler

__all__ = ("describe",)


def describe(app: Litestar, descriptions: Sequence[HTTPRouteHandler]) -> None:
    """Add the routes of ``descriptions`` to ``app``'s OpenAPI document."""
    if not descriptions or app.openapi_config is None:
        return
    described = Litestar(route_handlers=list(descriptions), openapi_config=app.openapi_config,
                         logging_config=None).openapi_schema
    document = app.openapi_schema
    document.paths = {**(document.paths or {}), **(described.paths or {})}
    if described.components.schemas:
        document.components.schemas = {**document.components.schemas, **described.components.schemas}
