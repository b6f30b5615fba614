"""``create_app(settings, roles)``: one Litestar application for the chosen roles."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from exchange.admin import AdminService, admin_routes
from exchange.bootstrap import Runtime, build_runtime
from exchange.console import ConsoleContext, Cookies, console_router, console_templates
from exchange.ingest import ingest_descriptions, ingest_routes
from exchange.ops.health import health_routes
from exchange.query import graphql_controller, query_routes, status_routes
from exchange.roles import Role
from exchange.settings import Settings
from exchange.tokenize import tokenize_routes
from exchange.web import RequestContextMiddleware, exception_handlers
from exchange.web.openapi import describe

__all__ = ("SHUTDOWN_DRAIN_S", "create_app")

# SIGTERM budget (10 s): the server stops accepting and finishes requests first, then
# background tasks get this long to drain before they are cancelled.
SHUTDOWN_DRAIN_S = 5.0


def _provide_admin_service(state: State) -> AdminService:
    service: AdminService = state.runtime.admin_service
    return service


def create_app(settings: Settings, roles: frozenset[Role], *, runtime: Runtime | None = None) -> Litestar:
    rt = runtime or build_runtime(settings, roles)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.stop(SHUTDOWN_DRAIN_S)

    handlers: list[Any] = list(health_routes)
    if Role.INGEST in roles:
        assert rt.ingest_service is not None  # build_runtime makes one for the ingest role
        handlers.extend(ingest_routes(rt.ingest_service, rt.token_verifier, rt.metrics,
                                      max_body_bytes=settings.http.max_body_bytes))
    if Role.TOKENIZER in roles:
        handlers.extend(tokenize_routes)
    console: ConsoleContext | None = None
    if Role.ADMIN in roles:
        handlers.extend(admin_routes)
        assert rt.admin_service is not None  # build_runtime makes them for the admin role
        assert rt.console_sessions is not None
        console = ConsoleContext(rt.console_sessions, Cookies(secure=not settings.local), rt.admin_service,
                                 rt.token_verifier)
        handlers.append(console_router())
    if Role.QUERY in roles:
        handlers.extend(query_routes)
        handlers.append(graphql_controller(local=settings.local))
    if Role.INGEST in roles or Role.QUERY in roles:
        handlers.extend(status_routes)  # the partners' question, on the API they send through

    state = State(
        {
            "runtime": rt,
            "roles": [r.value for r in roles],
            "metrics": rt.metrics,
            "supervisor": rt.supervisor,
            "token_verifier": rt.token_verifier,
            "health_probes": rt.health_probes,
            "metrics_hooks": rt.metrics_hooks,
            "console": console,
        }
    )
    app = Litestar(
        route_handlers=handlers,
        state=state,
        lifespan=[lifespan],
        middleware=[DefineMiddleware(RequestContextMiddleware, metrics=rt.metrics, load=rt.request_load)],
        exception_handlers=exception_handlers,
        dependencies={
            "admin_service": Provide(_provide_admin_service, sync_to_thread=False),
        },
        request_max_body_size=settings.http.max_body_bytes,
        template_config=console_templates() if console is not None else None,
        openapi_config=OpenAPIConfig(
            title="Exchange",
            version="1.0.0",
            components=Components(
                security_schemes={"bearerAuth": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
        ),
        logging_config=None,
        debug=False,
    )
    describe(app, ingest_descriptions if Role.INGEST in roles else ())
    return app
