"""The console's door: every page but the login needs a session; every POST its CSRF token.

A ``before_request`` hook on the console router. Without a valid session a GET is sent to the
login page (saying the session ended, when the browser had one), and a POST is refused with a
401 page: its action is not done, and nothing is replayed after the login. A POST whose form
lacks the session's CSRF token is refused with a 403 page, before the handler runs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.response import Redirect

from exchange.console._context import console_of
from exchange.errors import ExchangeError

__all__ = ("CsrfRefused", "SessionEnded", "console_guard", "safe_next")

CSRF_FIELD = "csrf_token"


class SessionEnded(ExchangeError):
    """No valid console session: none, expired, signed out, or from before a restart."""


class CsrfRefused(ExchangeError):
    """A form without the session's CSRF token: not sent by a console page."""


def safe_next(path: str | None) -> str:
    """Where to go after the login: a console page of this site only (no open redirect)."""
    if path and path.startswith("/console/") and not path.startswith("//") and "\\" not in path and len(path) < 500:
        return path
    return "/console/"


async def console_guard(request: Request[Any, Any, Any]) -> Response[Any] | None:
    console = console_of(request)
    cookie = request.cookies.get(console.cookies.session)
    session = console.sessions.read(cookie)
    request.state.console_session = session
    if request.route_handler.opt.get("console_public"):
        return None
    if session is None:
        if request.method == "GET":
            query = {"next": safe_next(request.url.path + (f"?{request.url.query}" if request.url.query else ""))}
            if cookie:
                query["ended"] = "1"
            return Redirect(f"/console/login?{urlencode(query)}", status_code=303)
        raise SessionEnded("your console session has ended")
    if request.method == "POST":
        form = await request.form()
        if not console.sessions.csrf_ok(session, form.get(CSRF_FIELD)):
            raise CsrfRefused("the form carries no valid CSRF token")
    return None
