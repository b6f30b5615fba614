"""Fail closed, route by route: the app's own route table is walked, so a new route without a
bearer-token check fails here. Only health, metrics and the API schema are open."""

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
_PARAM = re.compile(r"\{(\w+):(\w+)\}")
_VALUES = {"int": "1", "uuid": str(uuid.uuid4()), "str": "abc12345", "path": "x"}


def _concrete(path: str) -> str:
    return _PARAM.sub(lambda m: _VALUES[m.group(2)], path)


def _guarded(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves that is not open by design."""
    found: list[tuple[str, str]] = []
    for route in app.routes:
        if OPEN.match(route.path):
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
