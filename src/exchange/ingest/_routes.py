"""HTTP routes of the ingest context: POST /v1/ingest and POST /v2/ingest.

They are the busiest routes, and they are Litestar ASGI handlers (ADR 0004): routed by
Litestar, inside the request middleware (correlation id, trace span, access log, metrics,
load) and answered by the same exception handlers (problem+json) as every route, but they
read their two headers and their body themselves and write their answer as one JSON body.
Litestar's request object, parameter model and response layer cost about as much as
everything else the route does, on the one event loop the answers wait on; without them the
all-roles ingest rate came closer to the floor (measured in ADR 0004). How they are described
in the OpenAPI document is in ``_openapi.py``.

The checks run in the order the Litestar routes ran them: the method, the bearer token and
its scope (so a request without a valid token is a 401 whatever else is wrong with it), the
Idempotency-Key, then the body (413 over the limit, 400 naming the field).

Every answer but OPTIONS counts once in ``exchange_ingest_requests_total`` by its outcome
(``_outcome_of`` mirrors the exception handlers' statuses); the status per route is also in
the middleware's ``exchange_http_requests_total``, but not whether a 202 was a replay.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import asgi
from litestar.exceptions import HTTPException
from litestar.handlers import ASGIRouteHandler
from litestar.types import HTTPScope, Receive, Send

from exchange.adapters.jwt import TokenVerifier
from exchange.errors import AuthError, DependencyUnavailable, DuplicateKeyConflict, InvalidRequest
from exchange.ingest._schemas import decode_v1, decode_v2, idempotency_key
from exchange.ingest._service import IngestCommand, IngestService
from exchange.ops.logging import correlation_id_var
from exchange.ops.metrics import IngestOutcome, Metrics
from exchange.ops.tracing import current_traceparent
from exchange.web.asgi import allow_methods, headers_of, read_body, send_json
from exchange.web.auth import authorize

__all__ = ("ingest_routes",)

_HEADERS = frozenset((b"authorization", b"idempotency-key", b"content-length"))
_REPLAYED = {"Idempotent-Replayed": "true"}
_encode = msgspec.json.Encoder().encode


def _outcome_of(exc: Exception) -> IngestOutcome:
    if isinstance(exc, DuplicateKeyConflict):
        return "conflict"
    if isinstance(exc, (InvalidRequest, AuthError)) or (isinstance(exc, HTTPException) and exc.status_code < 500):
        return "rejected"
    if isinstance(exc, DependencyUnavailable):
        return "unavailable"
    return "error"


def ingest_routes(
    service: IngestService, verifier: TokenVerifier, metrics: Metrics, *, max_body_bytes: int
) -> tuple[ASGIRouteHandler, ...]:
    """The two ingest routes of one app, bound to its service, token verifier and metrics."""

    async def serve(version: Literal[1, 2], scope: HTTPScope, receive: Receive, send: Send) -> None:
        try:
            replayed = await answer(version, scope, receive, send)
        except Exception as exc:
            metrics.ingest_outcome(version, _outcome_of(exc))
            raise
        if replayed is not None:
            metrics.ingest_outcome(version, "replayed" if replayed else "accepted")

    async def answer(version: Literal[1, 2], scope: HTTPScope, receive: Receive, send: Send) -> bool | None:
        """The 202 sent (True when a replay), or None for an OPTIONS answer; an error propagates."""
        if not await allow_methods(scope, send, ("POST",)):
            return None
        headers = headers_of(scope, _HEADERS)
        principal = authorize(verifier, headers.get(b"authorization"), "ingest:write")
        key = idempotency_key(headers.get(b"idempotency-key"))
        body = await read_body(receive, headers.get(b"content-length"), max_body_bytes)
        kind = hint = None
        if version == 1:
            source = decode_v1(body).source
        else:
            record = decode_v2(body, service.schema_hints)
            source, kind, hint = record.source, record.record_kind, record.schema_hint
        command = IngestCommand(
            version=version, client_id=principal.subject, idempotency_key=key, body=body,
            correlation_id=correlation_id_var.get() or "", source=source, record_kind=kind, schema_hint=hint,
            traceparent=current_traceparent(),
        )
        outcome = await service.accept(command)
        await send_json(send, 202, _encode(outcome.response), _REPLAYED if outcome.replayed else None)
        return outcome.replayed

    @asgi("/v1/ingest", copy_scope=False)
    async def ingest_v1(scope: HTTPScope, receive: Receive, send: Send) -> None:
        await serve(1, scope, receive, send)

    @asgi("/v2/ingest", copy_scope=False)
    async def ingest_v2(scope: HTTPScope, receive: Receive, send: Send) -> None:
        await serve(2, scope, receive, send)

    return ingest_v1, ingest_v2
