"""Sign in with an admin bearer token, sign out.

The token is checked by the API's own ``TokenVerifier`` with the ``admin`` scope (so ``Bearer
dev`` works only where the API takes it: ``ENV=local``) and is not kept: the session cookie
carries the subject and an expiry no later than the token's. The login form is protected by a
double-submit nonce (a cookie and a MAC of it in the form), since it has no session yet.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.response import Template

from exchange.console._context import ConsoleContext, console_of, session_of
from exchange.console._guard import CsrfRefused, safe_next
from exchange.console._render import page, see_other
from exchange.console._session import LOGIN_NONCE_TTL_S, ConsoleSession
from exchange.errors import AuthError
from exchange.ops.logging import correlation_id_var

__all__ = ("login_form", "login_submit", "logout")

_log = logging.getLogger("exchange.console")
_PUBLIC = {"console_public": True}


def _cookie(console: ConsoleContext, key: str, value: str, max_age: int) -> Cookie:
    return Cookie(key=key, value=value, max_age=max_age, path="/", secure=console.cookies.secure, httponly=True,
                  samesite="strict")


def _session_ref(session: ConsoleSession) -> str:
    """The audit log's name for a session: not its id (which the CSRF token derives from)."""
    return hashlib.sha256(session.sid.encode()).hexdigest()[:16]


def _form(request: Request[Any, Any, Any], *, status: int = 200, error: str | None = None,
          next_path: str = "/console/") -> Template:
    console = console_of(request)
    nonce = console.sessions.login_nonce()
    template = page(request, "login.html", status=status, error=error, next_path=next_path,
                    login_token=console.sessions.login_token(nonce),
                    ended=request.query_params.get("ended") == "1",
                    signed_out=request.query_params.get("signed_out") == "1")
    template.cookies.append(_cookie(console, console.cookies.login, nonce, LOGIN_NONCE_TTL_S))
    return template


@get("/login", opt=_PUBLIC, include_in_schema=False, name="console-login")
async def login_form(request: Request[Any, Any, Any]) -> Template:
    return _form(request, next_path=safe_next(request.query_params.get("next")))


@post("/login", opt=_PUBLIC, include_in_schema=False, status_code=303)
async def login_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    console = console_of(request)
    form = await request.form()
    if not console.sessions.login_ok(request.cookies.get(console.cookies.login), form.get("login_token")):
        raise CsrfRefused("the login form carries no valid token; reload the login page")
    next_path = safe_next(form.get("next"))
    token = str(form.get("token") or "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    try:
        principal, until = console.verifier.authenticate_until(f"Bearer {token}" if token else None)
        principal.require("admin")
    except AuthError as exc:
        _log.warning("console: sign-in refused", extra={"reason": str(exc)})
        return _form(request, status=exc.status, error=f"That token was refused: {exc}.", next_path=next_path)
    value, session = console.sessions.issue(principal.subject, credential_exp=until)
    await console.admin.audit(principal.subject, "console.login", "console_session", _session_ref(session), "ok",
                              correlation_id=correlation_id_var.get())
    response = see_other(next_path)
    response.cookies.append(_cookie(console, console.cookies.session, value,
                                    max(1, int(session.expires_at - time.time()))))
    response.cookies.append(_cookie(console, console.cookies.login, "", 0))
    return response


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    console = console_of(request)
    session = session_of(request)
    console.sessions.sign_out(session)
    await console.admin.audit(session.subject, "console.logout", "console_session", _session_ref(session), "ok",
                              correlation_id=correlation_id_var.get())
    response = see_other("/console/login?signed_out=1")
    response.cookies.append(_cookie(console, console.cookies.session, "", 0))
    return response
