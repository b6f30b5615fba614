"""A console on the real stack: the admin role in process, over HTTPS-looking URLs (the session
cookie is Secure outside ENV=local, and the client sends Secure cookies over https only)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from exchange.roles import Role
from exchange.settings import Settings
from tests.support.app import bearer, make_settings, running_app

SESSION_SECRET = "console-test-session-secret-0123456789abcdef"
SESSION_COOKIE = "__Host-exchange-console"
ADMIN_ONLY = frozenset({Role.ADMIN})


@pytest.fixture
def console_settings(stack_env: dict[str, str], isolated_kafka: dict[str, str]) -> Settings:
    # ENV=test: not local, so Bearer dev is refused and the cookies are Secure, as in production.
    return make_settings(stack_env, **isolated_kafka, ENV="test", CONSOLE_SESSION_SECRET=SESSION_SECRET)


@pytest.fixture
async def console(console_settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with running_app(console_settings, ADMIN_ONLY, base_url="https://testserver.local") as client:
        yield client


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found is not None, f"no hidden field {name}"
    return found.group(1)


def alert(html: str) -> str:
    found = re.search(r'role="alert">([^<]*)<', html)
    assert found is not None, "no alert on the page"
    return found.group(1)


async def sign_in(client: AsyncTestClient[Any], settings: Settings, sub: str = "ops-carol") -> str:
    """Sign in through the login form; the CSRF token of the session opened."""
    form = await client.get("/console/login")
    token = bearer(settings, sub=sub, scopes="admin")["Authorization"].removeprefix("Bearer ")
    r = await client.post("/console/login", data={"token": token, "login_token": hidden(form.text, "login_token"),
                                                  "next": "/console/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = await client.get("/console/")
    assert page.status_code == 200, page.text
    return hidden(page.text, "csrf_token")


async def open_dlq_entry(dsn: str, topic: str, *, error_type: str = "ConsoleTestMissing") -> tuple[int, str]:
    """A dead letter as the normalizer writes one (a decodable v1 event, metadata only): its id, record id."""
    record_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    event: dict[str, Any] = {"event_type": "record.ingested", "event_version": "1", "event_id": event_id,
             "occurred_at": "2026-12-01T10:00:00.000Z", "correlation_id": f"console-{record_id[:8]}",
             "source": "console-src", "record_id": record_id,
             "raw_object": {"bucket": "raw-objects", "key": f"console-src/{record_id}.json", "sha256": "a" * 64,
                            "size_bytes": 10}}
    conn = await asyncpg.connect(dsn)
    try:
        entry = await conn.fetchval(
            "INSERT INTO dlq_events (record_id, event_id, event_version, dlq_topic, source_topic, original_event, "
            "error_type, error_message, error_stage, attempts, failed_at) VALUES ($1, $2, '1', $3, $4, $5::jsonb, "
            "$6, 'raw object missing', 'fetch', 1, now()) RETURNING id",
            uuid.UUID(record_id), uuid.UUID(event_id), f"{topic}.dlq", topic, json.dumps(event), error_type)
    finally:
        await conn.close()
    return int(entry), record_id
