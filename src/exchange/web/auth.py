"""The route guard: authenticate the bearer token and check the route's scope.

Routes declare their scope in ``opt={"scope": "..."}``; the principal lands in
``request.state.principal`` for the handler.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from exchange.adapters.jwt import Principal, TokenVerifier

__all__ = ("principal_of", "require_scope_guard")


async def require_scope_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    # Async on purpose: Litestar runs a sync guard in a worker thread, a hop per request.
    verifier: TokenVerifier = connection.app.state.token_verifier
    principal = verifier.authenticate(connection.headers.get("authorization"))
    scope = handler.opt.get("scope")
    if scope:
        principal.require(str(scope))
    connection.state.principal = principal


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal: Principal = connection.state.principal
    return principal
