"""Run the real application in-process against the session stack."""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from jose import jwt
from litestar.testing import AsyncTestClient

from exchange.app import create_app
from exchange.ops.logging import JsonFormatter
from exchange.roles import ALL_ROLES, Role
from exchange.settings import Settings, load_settings

TEST_JWT_SECRET = "integration-test-jwt-secret-0123456789abcdef"
DEV = {"Authorization": "Bearer dev"}


def make_settings(stack_env: Mapping[str, str], **overrides: str) -> Settings:
    env = {**stack_env, "JWT_SECRET": TEST_JWT_SECRET, **overrides}
    return load_settings(env)


def bearer(settings: Settings, *, sub: str = "client-a", scopes: str = "ingest:write", **claims: Any) -> dict[str, str]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": settings.auth.issuer, "aud": settings.auth.audience, "sub": sub, "scope": scopes,
        "iat": now, "exp": now + 300,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    token = jwt.encode(payload, settings.auth.jwt_secret.reveal(), algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


class LogCapture:
    """Every log line the process writes, as the JSON the handler would print."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())

    def text(self) -> str:
        self.handler.flush()
        return self.stream.getvalue()


@contextlib.asynccontextmanager
async def running_app(
    settings: Settings, roles: frozenset[Role] = ALL_ROLES, *, logs: LogCapture | None = None,
    base_url: str = "http://testserver.local",
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The whole application (lifespan included) behind an in-process HTTP client."""
    root = logging.getLogger()
    old_level = root.level
    if logs is not None:
        root.addHandler(logs.handler)
        root.setLevel(logging.DEBUG)
    try:
        app = create_app(settings, roles)
        async with AsyncTestClient(app=app, base_url=base_url) as client:
            yield client
    finally:
        if logs is not None:
            root.removeHandler(logs.handler)
            root.setLevel(old_level)
