"""A connection that dies in the middle of a unit of work is an outage (503), however asyncpg says so."""

from __future__ import annotations

import asyncpg
import pytest

from exchange.adapters.postgres import Database
from exchange.errors import DatabaseUnavailable


async def _statement_on_a_terminated_connection(db: Database) -> None:
    async with db.transaction() as conn:
        conn.terminate()
        await conn.fetchval("SELECT 1")


async def _busy(db: Database) -> None:
    async with db.connection():
        raise asyncpg.InterfaceError("cannot perform operation: another operation is in progress")


async def test_a_connection_closed_mid_transaction_is_database_unavailable(db: Database) -> None:
    # The server going away shows as a plain InterfaceError ("connection is closed") on the next
    # statement. Whether the connection is gone must be asked before the pool takes it back: a
    # released proxy answers is_closed() with an InterfaceError of its own (which escaped as a 500).
    with pytest.raises(DatabaseUnavailable):
        await _statement_on_a_terminated_connection(db)
    async with db.connection() as conn:  # the pool replaced it
        assert await conn.fetchval("SELECT 1") == 1


async def test_a_busy_connection_is_not_an_outage(db: Database) -> None:
    # Our own misuse (two operations at once on one connection) stays an error, not a 503.
    with pytest.raises(asyncpg.InterfaceError):
        await _busy(db)
