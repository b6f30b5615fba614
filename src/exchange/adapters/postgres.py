"""asyncpg pool with JSON codecs, created lazily, and one error translation.

The pool starts with zero connections so the process comes up while Postgres is down;
requests then fail with ``DatabaseUnavailable`` (HTTP 503) until it is back.

Every error that means "the server is not there for us right now" becomes
``DatabaseUnavailable`` here, in ``Database.connection`` and ``Database.transaction``, and
nowhere else (``is_unavailable`` says which); errors in our SQL or in its arguments stay
what they are, so they surface as bugs or are refused at the door.
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

__all__ = (
    "CONNECTION_ERRORS",
    "Connection",
    "Database",
    "advisory_key",
    "is_unavailable",
    "keep_session",
    "unnest_columns",
)

Connection = asyncpg.Connection  # re-exported so contexts type their SQL helpers without importing asyncpg

# Errors meaning "the database is not reachable right now" (retry later), whatever the
# moment the server went away: before a connection (refused, reset, timed out, "the
# database system is starting up / shutting down"), in the middle of a statement or of a
# transaction (the socket closed, "terminating connection due to administrator command"),
# or while the client was between two protocol messages (InternalClientError: asyncpg's
# protocol state no longer matches the server's, seen when the server stops).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionRefusedError, ConnectionResetError, BrokenPipeError, socket errors
    TimeoutError,  # connect and command timeouts (asyncio.TimeoutError is TimeoutError)
    asyncpg.PostgresConnectionError,  # class 08, incl. ConnectionDoesNotExistError (closed mid-operation)
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin/crash shutdown 57P01/02, cannot connect
    # now 57P03, database dropped 57P04, idle session timeout 57P05, statement cancelled 57014
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full, out of memory
    asyncpg.InternalClientError,
)


# A table, column or function this code needs is missing: the database's schema is behind the
# code (new code deployed before ``exchange migrate``). Like an outage, nothing this code writes
# can succeed until an operator acts, and no request or record is at fault: 503 and wait, never
# a 500 or a dead letter.
SCHEMA_BEHIND: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.UndefinedTableError,  # 42P01
    asyncpg.exceptions.UndefinedColumnError,  # 42703
    asyncpg.exceptions.UndefinedFunctionError,  # 42883
)


def is_unavailable(exc: BaseException, conn: asyncpg.Connection | None = None) -> bool:
    """True when ``exc`` means the database cannot serve us now (retry later), not that our
    statement or its arguments are wrong (``SCHEMA_BEHIND`` counts: the schema, not the input, is
    wrong). ``conn``: the connection it was raised on, if any.

    ``InterfaceError`` itself says "connection is closed" or "pool is closing" as well as
    "another operation is in progress" (a bug); it counts only when the connection is gone
    or there was none. Its subclasses (``DataError``: an argument the column type cannot
    take, ``ClientConfigurationError``, ...) are never outages.
    """
    if isinstance(exc, CONNECTION_ERRORS + SCHEMA_BEHIND):
        return True
    return type(exc) is asyncpg.InterfaceError and (conn is None or conn.is_closed())

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
        # Whether the connection is gone is asked while it is still ours: once the pool has it
        # back, its proxy answers every call (is_closed too) with an InterfaceError of its own,
        # which escaped as a 500 when PostgreSQL stopped mid-transaction.
        judged: bool | None = None  # set when the block raised: was the database unavailable?
        try:
            async with self.pool.acquire() as conn:
                try:
                    yield conn
                except asyncpg.InternalClientError:
                    conn.terminate()  # its protocol state is unknown: never lend it out again
                    judged = True
                    raise
                except Exception as exc:
                    judged = is_unavailable(exc, conn)
                    raise
        except Exception as exc:
            # Raised inside the block (judged there), or by acquire or release (no connection of ours).
            if judged if judged is not None else is_unavailable(exc):
                raise DatabaseUnavailable(f"database unavailable ({type(exc).__name__})") from None
            raise

    @contextlib.asynccontextmanager
    async def transaction(self, *, advisory_locks: Collection[int] = ()) -> AsyncIterator[asyncpg.Connection]:
        """One unit of work: committed when the block exits normally, else rolled back.

        ``advisory_locks`` are taken as transaction-scoped advisory locks in the same
        round-trip as BEGIN (the keys are integers, so they are safe in the statement text),
        in ascending order: two transactions locking overlapping sets then wait for each
        other in one direction only, never in a cycle (no deadlock).
        """
        begin = "BEGIN" + "".join(f"; SELECT pg_advisory_xact_lock({int(k)})" for k in sorted(set(advisory_locks)))
        async with self.connection() as conn:  # which maps a server gone away to DatabaseUnavailable
            await conn.execute(begin)
            try:
                yield conn
            except BaseException:
                # If the connection died mid-transaction, ROLLBACK fails too ("connection is
                # closed"); the server has rolled back already, so the first error is the one
                # to report.
                with contextlib.suppress(asyncpg.InterfaceError, *CONNECTION_ERRORS):
                    await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def ping(self) -> None:
        async with self.connection() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.close()
            self._pool = None
