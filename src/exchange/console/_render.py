"""Pages and error pages: every console answer is HTML with the same protective headers.

Errors a console request meets become a page saying what happened and that nothing was done,
with the right status code (never a 500 for bad input), and never the submitted value: only
the messages written here or the domain's own, which name fields and rules, never values.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.exceptions import ValidationException as LitestarValidation
from litestar.response import Redirect, Template

from exchange.console._context import console_of
from exchange.console._guard import CsrfRefused, SessionEnded
from exchange.errors import AuthError, DependencyUnavailable, InvalidRequest
from exchange.normalize import DlqEntryChanged, DlqEntryNotFound, NotReprocessable
from exchange.ops.logging import correlation_id_var

__all__ = ("HEADERS", "console_exception_handlers", "page", "see_other")

_log = logging.getLogger("exchange.console")

HEADERS = {
    # Nothing from elsewhere: the stylesheet is ours, there is no script, forms post here only.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def page(request: Request[Any, Any, Any], template: str, *, status: int = 200, **context: Any) -> Template:
    """A console page: the template with the operator (when signed in), their CSRF token and the nav."""
    session = getattr(request.state, "console_session", None)
    console = console_of(request)
    base = {
        "operator": session.subject if session is not None else None,
        "csrf_token": console.sessions.csrf_token(session) if session is not None else None,
        "path": request.url.path,
    }
    return Template(template_name=template, context={**base, **context}, status_code=status, headers=HEADERS)


def see_other(path: str) -> Redirect:
    """Post/redirect/get: an action answers with the page to look at, so a reload repeats nothing."""
    return Redirect(path, status_code=303, headers=HEADERS)


def _error(request: Request[Any, Any, Any], status: int, title: str, message: str) -> Template:
    return page(request, "error.html", status=status, title=title, message=message,
                correlation_id=correlation_id_var.get(), signed_out=status == 401)


def _session_ended(request: Request[Any, Any, Any], _: SessionEnded) -> Template:
    return _error(request, 401, "Session ended",
                  "Your console session has ended (expired, signed out, or the server restarted). "
                  "Nothing was done. Sign in again, then repeat the action if it is still needed.")


def _csrf(request: Request[Any, Any, Any], _: CsrfRefused) -> Template:
    return _error(request, 403, "Form refused",
                  "This form did not come from a console page (its CSRF token is missing or wrong). "
                  "Nothing was done.")


def _not_found(request: Request[Any, Any, Any], exc: DlqEntryNotFound) -> Template:
    return _error(request, 404, "No such DLQ entry", f"{exc}: it may have been removed. Nothing was done.")


def _changed(request: Request[Any, Any, Any], exc: DlqEntryChanged) -> Template:
    return _error(request, 409, "Already done",
                  f"{exc} (submitted twice, or another operator acted first). Nothing was done again.")


def _not_reprocessable(request: Request[Any, Any, Any], exc: NotReprocessable) -> Template:
    return _error(request, 409, "Cannot reprocess", f"{exc}. Nothing was done.")


def _invalid(request: Request[Any, Any, Any], exc: InvalidRequest) -> Template:
    titles = {404: "Not found", 409: "Conflict", 413: "Too large"}
    return _error(request, exc.status, titles.get(exc.status, "Not accepted"), f"{exc.detail}. Nothing was done.")


def _auth(request: Request[Any, Any, Any], exc: AuthError) -> Template:
    return _error(request, exc.status, "Not allowed", str(exc))


def _unavailable(request: Request[Any, Any, Any], exc: DependencyUnavailable) -> Template:
    _log.warning("console: dependency unavailable", extra={"dependency": exc.dependency})
    return _error(request, 503, "Unavailable",
                  f"The {exc.dependency.replace('_', ' ')} is unavailable; nothing was done. Try again shortly.")


def _validation(request: Request[Any, Any, Any], _: LitestarValidation) -> Template:
    return _error(request, 400, "Not accepted", "The request's parameters are not valid. Nothing was done.")


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        return _unexpected(request, exc)
    detail = "the form is larger than the console accepts" if exc.status_code == 413 else (
        exc.detail if isinstance(exc.detail, str) else "not accepted")
    return _error(request, exc.status_code, "Not accepted", f"{detail}. Nothing was done.")


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Template:
    _log.error("console: unhandled error", extra={"error_type": type(exc).__name__, "route": request.url.path})
    return _error(request, 500, "Internal error",
                  "Something failed on our side; the correlation id below finds it in the logs.")


console_exception_handlers: dict[int | type[Exception], Any] = {
    SessionEnded: _session_ended,
    CsrfRefused: _csrf,
    DlqEntryNotFound: _not_found,
    DlqEntryChanged: _changed,
    NotReprocessable: _not_reprocessable,
    InvalidRequest: _invalid,
    AuthError: _auth,
    DependencyUnavailable: _unavailable,
    LitestarValidation: _validation,
    HTTPException: _http,
    Exception: _unexpected,
}
