"""RFC 9457 problem+json: the one place domain errors become HTTP responses."""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.exceptions import ValidationException as LitestarValidation

from exchange.errors import (
    AuthError,
    DependencyUnavailable,
    ExchangeError,
    InvalidRequest,
    ValidationFailed,
)
from exchange.ops.logging import correlation_id_var
from exchange.web.validation import field_and_rule

__all__ = ("PROBLEM_JSON", "exception_handlers", "problem_response")

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://exchange.dev/problems/"
_log = logging.getLogger("exchange.http")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_response(
    status: int,
    slug: str,
    detail: str,
    *,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": _TYPE_BASE + slug,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    cid = correlation_id_var.get()
    if cid:
        body["correlation_id"] = cid
    body.update(extra or {})
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _invalid(request: Request[Any, Any, Any], exc: InvalidRequest) -> Response[dict[str, Any]]:
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationFailed) and exc.field:
        extra["errors"] = [{"field": exc.field, "message": exc.detail}]
    return problem_response(exc.status, exc.type_slug, exc.detail, instance=request.url.path, extra=extra)


def _auth(request: Request[Any, Any, Any], exc: AuthError) -> Response[dict[str, Any]]:
    headers = {"WWW-Authenticate": 'Bearer realm="exchange"'} if exc.status == 401 else None
    return problem_response(exc.status, exc.type_slug, str(exc), instance=request.url.path, headers=headers)


def _unavailable(request: Request[Any, Any, Any], exc: DependencyUnavailable) -> Response[dict[str, Any]]:
    _log.warning("dependency unavailable", extra={"dependency": exc.dependency, "error_type": type(exc).__name__})
    return problem_response(
        503,
        "dependency-unavailable",
        f"{exc.dependency} is unavailable; retry later with the same Idempotency-Key",
        instance=request.url.path,
        extra={"dependency": exc.dependency},
        headers={"Retry-After": "1"},
    )


_MISSING_PARAM = re.compile(r"^Missing required \w+ parameter '([^']+)'")


def _parameter_name(request: Request[Any, Any, Any], key: str) -> str:
    """A header as the client spells it (``Idempotency-Key``), not as the handler names it."""
    handler: Any = request.scope.get("route_handler")
    param = getattr(handler, "parsed_fn_signature", None)
    param = param.parameters.get(key) if param is not None else None
    kwarg = getattr(param, "kwarg_definition", None)
    alias = getattr(kwarg, "header", None) or getattr(kwarg, "name", None)
    return str(alias) if alias else key


def _litestar_validation(request: Request[Any, Any, Any], exc: LitestarValidation) -> Response[dict[str, Any]]:
    # Litestar's messages can quote the offending value; keep only field paths and rules.
    extra = exc.extra if isinstance(exc.extra, list) else []
    fields: list[dict[str, str]] = []
    for item in extra:
        if not isinstance(item, dict):
            continue
        path, rule = field_and_rule(str(item.get("message", "")))
        key = str(item.get("key") or "")
        if item.get("source") == "header":
            key = _parameter_name(request, key)
        field = path or (key if key not in ("", "data") else "body")
        fields.append({"field": field, "message": rule})
    if missing := _MISSING_PARAM.match(str(exc.detail)):
        fields.append({"field": missing.group(1), "message": "required parameter is missing"})
    detail = str(exc.detail) if str(exc.detail).startswith("Missing required") else "request failed validation"
    if fields:
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    elif not str(exc.detail).startswith("Missing required"):
        detail = "body is not valid JSON" if "JSON" in str(exc.detail) else "request failed validation"
    return problem_response(400, "validation-error", detail, instance=request.url.path,
                            extra={"errors": fields} if fields else None)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    slug = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
            413: "body-too-large", 415: "unsupported-media-type"}.get(status, "http-error")
    detail = exc.detail if status < 500 and isinstance(exc.detail, str) else _TITLES.get(status, "Error")
    if status == 413:
        detail = "request body exceeds the 1 MiB limit"
    return problem_response(status, slug, detail, instance=request.url.path, headers=exc.headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    _log.error("unhandled error", extra={"error_type": type(exc).__name__, "route": request.url.path})
    return problem_response(500, "internal-error", "internal error", instance=request.url.path)


def _exchange(request: Request[Any, Any, Any], exc: ExchangeError) -> Response[dict[str, Any]]:
    return _unexpected(request, exc)


exception_handlers: dict[int | type[Exception], Any] = {
    InvalidRequest: _invalid,
    AuthError: _auth,
    DependencyUnavailable: _unavailable,
    ExchangeError: _exchange,
    LitestarValidation: _litestar_validation,
    NotAuthorizedException: _http,
    PermissionDeniedException: _http,
    HTTPException: _http,
    Exception: _unexpected,
}
