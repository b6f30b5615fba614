"""Fixtures shared by the HTTP-level integration tests: one ingest-role app per module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from exchange.adapters.postgres import Database
from exchange.roles import Role
from exchange.settings import Settings
from tests.support.app import make_settings, running_app


@pytest.fixture(scope="module")
def app_settings(stack_env: dict[str, str]) -> Settings:
    return make_settings(stack_env)


@pytest.fixture(scope="module")
async def client(app_settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with running_app(app_settings, frozenset({Role.INGEST})) as c:
        yield c


@pytest.fixture
async def db(app_settings: Settings) -> AsyncIterator[Database]:
    """A started connection pool on the session stack's database, closed after the test."""
    database = Database(app_settings.database)
    await database.start()
    try:
        yield database
    finally:
        await database.close()
