"""ASGI middleware: correlation id, one access-log line and HTTP metrics per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.trace import SpanKind

from exchange.ops.logging import correlation_id_var
from exchange.ops.metrics import Metrics
from exchange.ops.tracing import context_from_headers, tracer
from exchange.runtime import RequestLoad

__all__ = ("CORRELATION_HEADER", "RequestContextMiddleware", "acceptable_correlation_id")

CORRELATION_HEADER = "x-correlation-id"
_CID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_access = logging.getLogger("exchange.http.access")


def acceptable_correlation_id(value: str | None) -> str:
    """The caller's id when it matches SPEC's pattern, else a fresh UUID."""
    if value is not None and _CID_RE.match(value):
        return value
    return str(uuid.uuid4())


def _route_of(scope: Scope) -> str:
    # Read from the handler each time (a set of one path, almost always): a cache keyed by
    # id() outlived its app's handlers in tests that build many apps, and a weak one could
    # not hold the handlers Litestar makes for OPTIONS (no __weakref__ slot), which failed
    # every OPTIONS request after its answer had started.
    paths = getattr(scope.get("route_handler"), "paths", None)
    return str(min(paths)) if paths else "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, load: RequestLoad | None = None) -> None:
        self._app = app
        self._metrics = metrics
        self._load = load or RequestLoad(busy_at=0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await self._app(scope, receive, send)
            return
        raw = None
        trace_headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"x-correlation-id":
                raw = value.decode("latin-1")
            elif name in (b"traceparent", b"tracestate"):
                trace_headers[name.decode()] = value.decode("latin-1")
        cid = acceptable_correlation_id(raw)
        token = correlation_id_var.set(cid)
        started = time.perf_counter()
        status_holder = [500]

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-correlation-id", cid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        method = str(scope.get("method", ""))
        route = "unmatched"
        self._load.enter()
        try:
            with tracer.start_as_current_span(
                f"HTTP {method}",
                kind=SpanKind.SERVER,
                context=context_from_headers(trace_headers),
                record_exception=False,  # exception messages may quote data; the status is enough
            ) as span:
                try:
                    await self._app(scope, receive, send_with_header)
                finally:
                    route = _route_of(scope)
                    span.update_name(f"{method} {route}")
                    span.set_attributes({  # one call: each set_attribute takes the span's lock
                        "http.request.method": method, "http.route": route,
                        "http.response.status_code": status_holder[0], "correlation_id": cid,
                    })
        finally:
            self._load.leave()
            elapsed = time.perf_counter() - started
            status = status_holder[0]
            self._metrics.observe_request(method, route, status, elapsed)
            if route not in ("/metrics", "/healthz"):
                _access.info(
                    "request",
                    extra={"method": method, "route": route, "status": status,
                           "latency_ms": round(elapsed * 1000, 2)},
                )
            correlation_id_var.reset(token)
