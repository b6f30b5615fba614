"""What every console page needs, built once per app: the sessions, the cookies, the admin service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection

from exchange.adapters.jwt import TokenVerifier
from exchange.admin import AdminService
from exchange.console._session import ConsoleSession, Cookies, SessionCodec

__all__ = ("ConsoleContext", "console_of", "session_of")


@dataclass(frozen=True, slots=True)
class ConsoleContext:
    sessions: SessionCodec
    cookies: Cookies
    admin: AdminService
    verifier: TokenVerifier


def console_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ConsoleContext:
    context: ConsoleContext = connection.app.state.console
    return context


def session_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ConsoleSession:
    """The signed-in operator's session (the guard put it there; public pages have none)."""
    session: ConsoleSession = connection.state.console_session
    return session
