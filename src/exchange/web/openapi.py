"""The served OpenAPI document: error answers as they are sent, and routes Litestar serves but
does not describe.

Error answers: every route lists the statuses it can answer with an error, each as
``application/problem+json`` with the ``Problem`` schema (``problem_responses``). Without
them Litestar documents a 400 of its own shape as ``application/json`` and no 401, 403, 404
or 503 at all; ``web.problems`` is what answers, so its shape is the one documented.

ASGI handlers: Litestar documents its HTTP route handlers only. A route served as an ASGI
handler (the ingest routes, ADR 0004) is described by an HTTP route handler that is never
registered for serving: ``describe`` has Litestar generate those descriptions in an app of
their own and adds their paths and component schemas to the served app's document. Only
public API is used (``Litestar.openapi_schema``); the document is built once, here, instead
of at its first request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from exchange.web.problems import PROBLEM_JSON

__all__ = ("Problem", "ProblemField", "describe", "problem_responses")


class ProblemField(msgspec.Struct):
    """One failing field of a 400: its path (or header) and the rule, never its value."""

    field: str
    message: str


class Problem(msgspec.Struct):
    """RFC 9457 problem details: the body of every error answer; ``type`` is stable per kind of error."""

    # Optional members are left out when they do not apply (never null). Only documentation
    # uses this struct (web.problems answers with a dict), so the defaults are never sent.
    type: Annotated[str, msgspec.Meta(extra_json_schema={"extra": {"format": "uri"}})]
    title: str
    status: int
    detail: str
    instance: str = ""
    correlation_id: str = ""
    dependency: str = ""
    """On 503: the unavailable dependency (database, object_store)."""
    errors: list[ProblemField] = msgspec.field(default_factory=list)
    """On 400: the failing fields."""


_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid request: the failing field or parameter is named, never its value",
    401: "Missing, invalid or expired bearer token",
    403: "The token lacks the scope this route needs",
    404: "No such entity",
    409: "Conflict with the entity's state",
    413: "Body larger than 1 MiB",
    503: "A dependency (database, object store) is unavailable; retry later",
}


def problem_responses(*statuses: int, described: Mapping[int, str] | None = None) -> dict[int, ResponseSpec]:
    """The error answers of a route, as problem+json; ``described`` words some for this route."""
    wording = {**_DESCRIPTIONS, **(described or {})}
    return {
        status: ResponseSpec(data_container=Problem, description=wording[status], media_type=PROBLEM_JSON,
                             generate_examples=False)
        for status in statuses
    }


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
