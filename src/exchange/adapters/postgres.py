"""asyncpg pool with JSON codecs, created lazily, and one error translation.

The pool starts with zero connections so the process comes up while Postgres is down;
requests then fail with ``DatabaseUnavailable`` (HTTP 503) until it is back.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

import asyncpg
import msgspec

from exchange.errors import DatabaseUnavailable
from exchange.settings import DatabaseSettings

__all__ = ("CONNECTION_ERRORS", "Connection", "Database", "advisory_key", "keep_session", "unnest_columns")

Connection = asyncpg.Connection  # re-exported so contexts type their SQL helpers without importing asyncpg

# Errors meaning "the database is not reachable right now" (retryable), as opposed to
# errors in our SQL or data, which must surface as bugs.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
)

_json_encoder = msgspec.json.Encoder()


def _encode_json(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode()  # already-encoded JSON (e.g. an event built by msgspec)
    return _json_encoder.encode(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, schema="pg_catalog", encoder=_encode_json, decoder=msgspec.json.decode, format="text"
        )


async def keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset on release: nothing beyond what asyncpg always does.

    Before calling this asyncpg rolls back an open transaction and drops listeners. Its
    default reset also sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``,
    one more round-trip on every release, a measurable share of the ingest loop
    (docs/performance.md). This code keeps no session state -- no SET, LISTEN, cursors
    or session-level advisory locks, which ``tests/unit/test_architecture.py`` pins -- so
    there is nothing for that query to undo.
    """


def unnest_columns(rows: Sequence[Any]) -> list[list[Any]]:
    """One array per field of slotted dataclass ``rows``, in field order: the parameters of an
    ``unnest($1::..[], $2::..[], ...)`` that writes many rows in one statement."""
    if not rows:
        return []
    return [[getattr(row, name) for row in rows] for name in type(rows[0]).__slots__]


def advisory_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for ``parts`` (a stable hash, not Python's ``hash``)."""
    digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Database:
    def __init__(self, settings: DatabaseSettings) -> None:
        self._settings = settings
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self._settings.dsn,
                min_size=0,
                max_size=self._settings.pool_max,
                init=_init_connection,
                reset=keep_session,
                command_timeout=30,
                timeout=5,  # connect timeout: fail fast when Postgres is down
                max_inactive_connection_lifetime=60,
            )

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database.start() was not awaited")
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self.pool.acquire() as conn:
                yield conn
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable(f"database unavailable ({type(exc).__name__})") from None

    @contextlib.asynccontextmanager
    async def transaction(self, *, advisory_locks: Collection[int] = ()) -> AsyncIterator[asyncpg.Connection]:
        """One unit of work: committed when the block exits normally, else rolled back.

        ``advisory_locks`` are taken as transaction-scoped advisory locks in the same
        round-trip as BEGIN (the keys are integers, so they are safe in the statement text),
        in ascending order: two transactions locking overlapping sets then wait for each
        other in one direction only, never in a cycle (no deadlock).
        """
        begin = "BEGIN" + "".join(f"; SELECT pg_advisory_xact_lock({int(k)})" for k in sorted(set(advisory_locks)))
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(begin)
                try:
                    yield conn
                except BaseException:
                    # If the connection died mid-transaction, ROLLBACK fails too ("connection is
                    # closed"); the server has rolled back already, so the first error is the one to
                    # report.
                    with contextlib.suppress(asyncpg.InterfaceError, *CONNECTION_ERRORS):
                        await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable(f"database unavailable ({type(exc).__name__})") from None

    async def ping(self) -> None:
        async with self.connection() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.close()
            self._pool = None
