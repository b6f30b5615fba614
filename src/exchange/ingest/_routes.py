"""HTTP routes of the ingest context: POST /v1/ingest and POST /v2/ingest."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, HeaderParameter

from exchange.ingest._schemas import IngestAccepted, PartnerRecordV1, PartnerRecordV2, decode_v1, decode_v2
from exchange.ingest._service import IngestCommand, IngestService
from exchange.ops.logging import correlation_id_var
from exchange.ops.tracing import current_traceparent
from exchange.web import PROBLEM_JSON, authenticated, principal_of

__all__ = ("ingest_routes",)


class Problem(msgspec.Struct):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    correlation_id: str | None = None


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem, description=description, media_type=PROBLEM_JSON, generate_examples=False
    )


_RESPONSES = {
    400: _problem("Invalid payload or headers (the field path is named, never its value)"),
    401: _problem("Unauthorized"),
    403: _problem("Token lacks the ingest:write scope"),
    409: _problem("Idempotency conflict: the key was used with a different body"),
    413: _problem("Body larger than 1 MiB"),
    503: _problem("Object store or database unavailable; retry with the same Idempotency-Key"),
}

IdempotencyKey = Annotated[
    str,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=8,
        max_length=255,
        pattern=r"^[\x21-\x7E]+$",
        description="8-255 visible ASCII characters; scoped to the authenticated client",
    ),
]
CorrelationId = Annotated[
    str | None,
    HeaderParameter(
        name="X-Correlation-Id", required=False, description="Used when it matches ^[A-Za-z0-9._:-]{8,128}$"
    ),
]


_CLOSED: dict[str, Any] = {"additionalProperties": False}  # the structs forbid unknown fields


# These two providers are never called: they only let Litestar document the request
# body from the same structs that validate it. The handlers read the raw bytes (they
# are hashed and stored verbatim) and decode them with msgspec themselves.
def _doc_v1(  # pragma: no cover - documentation only
    data: Annotated[PartnerRecordV1, Body(schema_extra=_CLOSED)],
) -> None:
    return None


def _doc_v2(  # pragma: no cover - documentation only
    data: Annotated[PartnerRecordV2, Body(schema_extra=_CLOSED)],
) -> None:
    return None


# The handlers take ONE dependency: Litestar resolves two or more of one level concurrently
# in an anyio task group, a task per dependency per request (measured ~6 % of the ingest loop).
async def _accept(service: IngestService, command: IngestCommand) -> Response[dict[str, Any]]:
    """What both versions do once their body is valid: the idempotent accept, then the 202."""
    outcome = await service.accept(command)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return Response(outcome.response, status_code=202, headers=headers)


@post(
    "/v1/ingest",
    **authenticated("ingest:write"),
    status_code=202,
    summary="Ingest a partner record (v1)",
    responses=_RESPONSES,
    dependencies={"_doc": Provide(_doc_v1, sync_to_thread=False)},
)
async def ingest_v1(
    request: Request[Any, Any, Any],
    ingest_service: NamedDependency[IngestService],
    idempotency_key: IdempotencyKey,
    correlation_id: CorrelationId = None,
) -> Response[IngestAccepted]:
    body = await request.body()
    record = decode_v1(body)
    command = IngestCommand(
        version=1, client_id=principal_of(request).subject, idempotency_key=idempotency_key, body=body,
        correlation_id=correlation_id_var.get() or "", source=record.source, traceparent=current_traceparent(),
    )
    return await _accept(ingest_service, command)  # type: ignore[return-value]


@post(
    "/v2/ingest",
    **authenticated("ingest:write"),
    status_code=202,
    summary="Ingest a partner record (v2)",
    responses=_RESPONSES,
    dependencies={"_doc": Provide(_doc_v2, sync_to_thread=False)},
)
async def ingest_v2(
    request: Request[Any, Any, Any],
    ingest_service: NamedDependency[IngestService],
    idempotency_key: IdempotencyKey,
    correlation_id: CorrelationId = None,
) -> Response[IngestAccepted]:
    body = await request.body()
    record = decode_v2(body, ingest_service.schema_hints)
    command = IngestCommand(
        version=2, client_id=principal_of(request).subject, idempotency_key=idempotency_key, body=body,
        correlation_id=correlation_id_var.get() or "", source=record.source, record_kind=record.record_kind,
        schema_hint=record.schema_hint, traceparent=current_traceparent(),
    )
    return await _accept(ingest_service, command)  # type: ignore[return-value]


ingest_routes = (ingest_v1, ingest_v2)
