"""How POST /v1/ingest and /v2/ingest are described in the served OpenAPI document.

The routes themselves are ASGI handlers (``_routes.py``, ADR 0004), which Litestar does not
document. These declarations give its generator what it documents for any route: the bearer
security, the header parameters, the request body from the very structs that validate it and
the responses. They are never called; ``web.openapi.describe`` puts what they describe into the
app's document, and tests/integration/test_contracts.py holds it to contracts/api/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from litestar import post
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, HeaderParameter

from exchange.ingest._schemas import (
    KEY_MAX_LENGTH,
    KEY_MIN_LENGTH,
    KEY_PATTERN,
    IngestAccepted,
    PartnerRecordV1,
    PartnerRecordV2,
)
from exchange.web import problem_responses

__all__ = ("ingest_descriptions",)


_RESPONSES = {
    # Given here, not by a return annotation: the declarations below return nothing.
    202: ResponseSpec(data_container=IngestAccepted, description="Request accepted, processing continues off-line",
                      generate_examples=False),
    **problem_responses(400, 401, 403, 409, 413, 503, described={
        400: "Invalid payload or headers (the field path is named, never its value)",
        403: "Token lacks the ingest:write scope",
        409: "Idempotency conflict: the key was used with a different body",
        503: "Object store or database unavailable; retry with the same Idempotency-Key",
    }),
}

IdempotencyKey = Annotated[
    str,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=KEY_MIN_LENGTH,
        max_length=KEY_MAX_LENGTH,
        pattern=KEY_PATTERN,
        description=f"{KEY_MIN_LENGTH}-{KEY_MAX_LENGTH} visible ASCII characters; scoped to the authenticated client",
    ),
]
CorrelationId = Annotated[
    str | None,
    HeaderParameter(
        name="X-Correlation-Id", required=False, description="Used when it matches ^[A-Za-z0-9._:-]{8,128}$"
    ),
]
_CLOSED = {"additionalProperties": False}  # the structs forbid unknown fields
_BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


# The request body is documented through a dependency: a parameter named ``data`` of the
# route would be the body in Litestar's eyes, and these are all parameters of one route.
def _body_v1(data: Annotated[PartnerRecordV1, Body(schema_extra=_CLOSED)]) -> None:  # pragma: no cover
    return None


def _body_v2(data: Annotated[PartnerRecordV2, Body(schema_extra=_CLOSED)]) -> None:  # pragma: no cover
    return None


def _description(version: int, body: Callable[..., None]) -> HTTPRouteHandler:
    async def ingest(idempotency_key: IdempotencyKey, correlation_id: CorrelationId = None) -> None:
        return None  # the signature is the description; _routes serves the route

    return post(
        f"/v{version}/ingest", status_code=202, summary=f"Ingest a partner record (v{version})",
        operation_id=f"V{version}IngestIngestV{version}",  # the id Litestar gave the @post routes before
        responses=_RESPONSES, security=_BEARER, dependencies={"_body": Provide(body, sync_to_thread=False)},
    )(ingest)


ingest_descriptions: tuple[HTTPRouteHandler, ...] = (_description(1, _body_v1), _description(2, _body_v2))
