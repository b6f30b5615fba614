"""Which asyncpg and OS errors mean "the database is not there for us now" (503, wait) and which
mean our statement or its arguments are wrong (never a 503: a bug, or refused at the door)."""

from __future__ import annotations

import asyncpg
import pytest
from asyncpg.exceptions import _base

from exchange.adapters.postgres import is_unavailable

GONE = [
    OSError("network is unreachable"),
    ConnectionRefusedError("connect refused"),
    ConnectionResetError("reset by peer"),
    BrokenPipeError("broken pipe"),
    TimeoutError(),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.ConnectionFailureError("connection failure"),
    asyncpg.exceptions.ClientCannotConnectError("cannot connect"),
    asyncpg.CannotConnectNowError("the database system is shutting down"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("crash shutdown"),
    asyncpg.exceptions.IdleSessionTimeoutError("idle session timeout"),
    asyncpg.exceptions.QueryCanceledError("canceling statement due to user request"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.DiskFullError("could not extend file"),
    asyncpg.InternalClientError("cannot process message 'E': protocol is in an unexpected state"),
    asyncpg.exceptions.ProtocolError("unexpected message"),
    asyncpg.exceptions.OutdatedSchemaCacheError("cached statement plan is invalid"),
]

OURS = [
    _base.DataError("invalid input for query argument $1 (value out of int64 range)"),
    asyncpg.exceptions.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00'),
    asyncpg.exceptions.NumericValueOutOfRangeError("value out of range"),
    asyncpg.exceptions.DatetimeFieldOverflowError("date/time field value out of range"),
    asyncpg.UniqueViolationError("duplicate key value"),
    asyncpg.PostgresSyntaxError("syntax error"),
    asyncpg.exceptions.ClientConfigurationError("bad dsn"),
    asyncpg.exceptions.InvalidTextRepresentationError("invalid input syntax for type uuid"),
    ValueError("not an asyncpg error"),
]


@pytest.mark.parametrize("exc", GONE, ids=lambda e: type(e).__name__)
def test_the_server_going_away_is_unavailable_however_it_shows(exc: BaseException) -> None:
    assert is_unavailable(exc)


# A schema behind the code (not migrated yet): no request is at fault; wait, like an outage.
SCHEMA_BEHIND = [
    asyncpg.exceptions.UndefinedTableError("relation does not exist"),
    asyncpg.exceptions.UndefinedColumnError('column "client_id" does not exist'),
    asyncpg.exceptions.UndefinedFunctionError("function does not exist"),
]


@pytest.mark.parametrize("exc", SCHEMA_BEHIND, ids=lambda e: type(e).__name__)
def test_a_schema_behind_the_code_is_unavailable_until_migrated(exc: BaseException) -> None:
    assert is_unavailable(exc)


@pytest.mark.parametrize("exc", OURS, ids=lambda e: type(e).__name__)
def test_errors_of_our_statement_or_arguments_are_not(exc: BaseException) -> None:
    assert not is_unavailable(exc)


class _Conn:
    """Only what ``is_unavailable`` asks of a connection."""

    def __init__(self, *, closed: bool) -> None:
        self._closed = closed

    def is_closed(self) -> bool:
        return self._closed


def test_an_interface_error_counts_only_when_the_connection_is_gone() -> None:
    closed = asyncpg.InterfaceError("cannot perform operation: connection is closed")
    busy = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    assert is_unavailable(closed, _Conn(closed=True))  # type: ignore[arg-type]
    assert is_unavailable(asyncpg.InterfaceError("pool is closing"))  # no connection was acquired
    assert not is_unavailable(busy, _Conn(closed=False))  # type: ignore[arg-type]
