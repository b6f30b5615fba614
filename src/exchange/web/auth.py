"""Authentication: verify the bearer token and check the route's scope, before anything else.

Routes declare it with ``**authenticated("scope")`` in their decorator (the hook, the scope
it checks and the OpenAPI security requirement, always together); the principal lands in
``request.state.principal`` for the handler. It runs before the
route's parameters and body are parsed, so a request without a valid token is a 401
whatever else is wrong with it.

A ``before_request`` hook rather than a Litestar guard: Litestar calls each guard with a
shallow copy of the route handler, made anew for every request -- a measurable share of the
ingest event loop under load (docs/performance.md). Async on purpose: Litestar would run a
sync hook in a worker thread, a hop per request. Routes served as ASGI handlers (the ingest
routes, ADR 0004) call ``authorize`` themselves, first thing after the method check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection

from exchange.adapters.jwt import Principal, TokenVerifier
from exchange.errors import Forbidden
from exchange.web.openapi import problem_responses

__all__ = ("authenticated", "authorize", "principal_of", "require_scope")


Scope = str | tuple[str, ...]
"""One scope, or alternatives: a tuple is satisfied by any one of its scopes."""


def authorize(verifier: TokenVerifier, authorization: str | None, scope: Scope | None) -> Principal:
    """The caller of an ``Authorization`` header value, when it carries ``scope``: the one check
    behind the hook below and the routes served as ASGI handlers (``web.asgi``)."""
    principal = verifier.authenticate(authorization)
    if isinstance(scope, tuple):
        if not principal.scopes.intersection(scope):
            raise Forbidden(f"token lacks one of the required scopes {', '.join(scope)}")
    elif scope:
        principal.require(scope)
    return principal


async def require_scope(request: Request[Any, Any, Any]) -> None:
    scope: Scope | None = request.route_handler.opt.get("scope")
    request.state.principal = authorize(request.app.state.token_verifier, request.headers.get("authorization"), scope)


def authenticated(scope: Scope, *errors: int, described: Mapping[int, str] | None = None) -> dict[str, Any]:
    """Route-decorator keywords for a route that needs a bearer token carrying ``scope``; its
    documented error answers are 401, 403 and ``errors`` (problem+json, ``described`` words some)."""
    return {"before_request": require_scope, "opt": {"scope": scope}, "security": [{"bearerAuth": []}],
            "responses": problem_responses(*sorted({401, 403, *errors}), described=described)}


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal: Principal = connection.state.principal
    return principal
