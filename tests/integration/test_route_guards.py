"""Fail closed, route by route: the app's own route table is walked, so a new route without a
bearer-token check fails here. Only health, metrics and the API schema are open. The console's
pages (``/console``) are walked apart: they take a console session (a cookie), never a bearer
token, and only its login and stylesheet are open."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from litestar.routes import ASGIRoute, HTTPRoute

from exchange.adapters.jwt import SCOPES
from exchange.roles import ALL_ROLES
from exchange.settings import Settings
from tests.support.app import bearer, make_settings, running_app

pytestmark = pytest.mark.timeout(120)

OPEN = re.compile(r"^/(healthz|health/detailed|metrics|schema)(/|$)")
CONSOLE = re.compile(r"^/console(/|$)")
CONSOLE_OPEN = {("GET", "/console/login"), ("POST", "/console/login"), ("GET", "/console/static/console.css")}
_PARAM = re.compile(r"\{(\w+):(\w+)\}")
_VALUES = {"int": "1", "uuid": str(uuid.uuid4()), "str": "abc12345", "path": "x"}


def _concrete(path: str) -> str:
    return _PARAM.sub(lambda m: _VALUES[m.group(2)], path)


def _guarded(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves that is not open by design."""
    found: list[tuple[str, str]] = []
    for route in app.routes:
        if OPEN.match(route.path) or CONSOLE.match(route.path):
            continue
        if isinstance(route, ASGIRoute):
            found.append(("POST", route.path))  # the ingest handlers answer POST
        elif isinstance(route, HTTPRoute):
            found.extend((m, route.path) for m in sorted(route.methods) if m not in ("OPTIONS", "HEAD"))
        else:
            found.append(("GET", route.path))  # websockets or anything new must be looked at
    return found


def _declared_scope(app: Any, path: str) -> set[str]:
    scopes: set[str] = set()
    for route in app.routes:
        if route.path == path and isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                declared = handler.opt.get("scope")  # one scope, or a tuple of alternatives
                scopes.update(declared if isinstance(declared, tuple) else [str(declared)] if declared else [])
    return scopes


async def test_every_route_but_health_metrics_and_schema_needs_a_token_with_a_scope(
    stack_env: dict[str, str], app_settings: Settings
) -> None:
    async with running_app(app_settings, ALL_ROLES) as client:
        routes = _guarded(client.app)
        assert len(routes) >= 12, routes  # the walk really sees the app's routes
        no_scope = bearer(app_settings, scopes="")
        for method, path in routes:
            url = _concrete(path)
            anonymous = await client.request(method, url)
            assert anonymous.status_code == 401, (method, path, anonymous.status_code)
            assert anonymous.headers["content-type"].startswith("application/problem+json")
            dev = await client.request(method, url, headers={"Authorization": "Bearer nope"})
            assert dev.status_code == 401, (method, path)
            unscoped = await client.request(method, url, headers=no_scope)
            assert unscoped.status_code == 403, (method, path, unscoped.status_code)
            for scope in _declared_scope(client.app, path):
                assert scope in SCOPES, (path, scope)


async def test_the_open_routes_are_only_health_metrics_and_schema(app_settings: Settings) -> None:
    async with running_app(app_settings, ALL_ROLES) as client:
        open_paths = {route.path for route in client.app.routes if OPEN.match(route.path)}
        assert {"/healthz", "/health/detailed", "/metrics", "/schema/openapi.json"} <= open_paths
        assert (await client.get("/healthz")).status_code == 200


async def test_outside_local_the_dev_token_opens_nothing(stack_env: dict[str, str]) -> None:
    production = make_settings(stack_env, ENV="production")
    async with running_app(production, ALL_ROLES) as client:
        for method, path in _guarded(client.app):
            answer = await client.request(method, _concrete(path), headers={"Authorization": "Bearer dev"})
            assert answer.status_code == 401, (method, path)
            assert "ENV=local" in answer.json()["detail"]


def _console_routes(app: Any) -> list[tuple[str, str, bool]]:
    """(method, path, open) of every console route: open when its handler is the console's public door."""
    found: list[tuple[str, str, bool]] = []
    for route in app.routes:
        if CONSOLE.match(route.path) and isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                found.extend((m, route.path, bool(handler.opt.get("console_public")))
                             for m in sorted(handler.http_methods) if m not in ("OPTIONS", "HEAD"))
    return found


@pytest.mark.parametrize("env", ["test", "production"])
async def test_every_console_page_but_its_login_and_stylesheet_needs_a_console_session(
    stack_env: dict[str, str], env: str
) -> None:
    settings = make_settings(stack_env, ENV=env)
    async with running_app(settings, ALL_ROLES, base_url="https://testserver.local") as client:
        routes = _console_routes(client.app)
        assert len(routes) >= 12, routes
        assert {(m, p) for m, p, is_open in routes if is_open} == CONSOLE_OPEN
        admin = bearer(settings, sub="ops", scopes="admin")
        for method, path, is_open in routes:
            if is_open:
                continue
            for headers in ({}, admin, {"Authorization": "Bearer dev"}):  # a bearer token opens no page
                answer = await client.request(method, _concrete(path), headers=headers, follow_redirects=False)
                if method == "GET":
                    assert answer.status_code == 303, (method, path)
                    assert answer.headers["location"].startswith("/console/login?next="), (method, path)
                else:
                    assert answer.status_code == 401, (method, path, answer.status_code)
                    assert answer.headers["content-type"].startswith("text/html")
