"""``GET /v1/records/{record_id}/status``: where a record is, for the client that sent it (or an
admin). Its answer's shape is declared here, so the served OpenAPI documents it exactly."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.params import FromPath

from exchange.adapters.postgres import Database
from exchange.query._journey import Journey, Stage, record_journey
from exchange.query._params import checked_uuid
from exchange.web import authenticated, principal_of

__all__ = ("RecordStatus", "record_status_route", "status_body")


class StatusAccepted(msgspec.Struct):
    at: dt.datetime
    client: str | None
    """The JWT ``sub`` that sent it (null only for an old record whose idempotency key expired)."""
    source: str
    event_version: str


class StatusRaw(msgspec.Struct):
    size_bytes: int
    sha256: str
    state: str


class StatusOutboxRow(msgspec.Struct):
    topic: str
    pending: bool
    created_at: dt.datetime
    published_at: dt.datetime | None
    attempts: int


class StatusAttempt(msgspec.Struct):
    attempt_no: int
    status: str
    result: str | None
    error_type: str | None
    error_stage: str | None
    transient: bool | None
    started_at: dt.datetime
    ended_at: dt.datetime | None


class StatusCanonical(msgspec.Struct):
    normalized_at: dt.datetime


class StatusDeadLetter(msgspec.Struct):
    error_type: str
    error_stage: str
    attempts: int
    failed_at: dt.datetime
    status: str
    resolved_at: dt.datetime | None


class RecordStatus(msgspec.Struct):
    """A record's journey: metadata only, never an identifier, a payload or an error message."""

    record_id: str
    stage: Stage
    accepted: StatusAccepted
    raw: StatusRaw
    outbox: list[StatusOutboxRow]
    attempts: list[StatusAttempt]
    canonical: StatusCanonical | None
    dead_letters: list[StatusDeadLetter]
    latency_ms: float | None


def status_body(j: Journey) -> RecordStatus:
    a = j.accepted
    return RecordStatus(
        record_id=j.record_id, stage=j.stage,
        accepted=StatusAccepted(a.accepted_at, a.client_id, a.source, a.event_version),
        raw=StatusRaw(a.size_bytes, a.sha256, a.state),
        outbox=[StatusOutboxRow(d.topic, d.published_at is None, d.created_at, d.published_at, d.attempts)
                for d in j.outbox],
        attempts=[StatusAttempt(t.attempt_no, t.status, t.result, t.error_type, t.error_stage, t.transient,
                                t.started_at, t.ended_at) for t in j.attempts],
        canonical=None if j.canonical is None else StatusCanonical(j.canonical.normalized_at),
        dead_letters=[StatusDeadLetter(d.error_type, d.error_stage, d.attempts, d.failed_at, d.status, d.resolved_at)
                      for d in j.dead_letters],
        latency_ms=j.latency_ms,
    )


@get("/v1/records/{record_id:str}/status", summary="Where a record is: accepted, stored, published, normalized",
     description="For the client that sent the record (scope ingest:write) or an admin; any other record, "
                 "and an unknown one, answer 404 alike.",
     tags=["ingest"], **authenticated(("ingest:write", "admin"), 400, 404, 503))
async def record_status_route(request: Request[Any, Any, Any], state: State, record_id: FromPath[str]) -> RecordStatus:
    key = checked_uuid(record_id, "record_id")
    db: Database = state.runtime.db
    return status_body(await record_journey(db, key, principal_of(request)))
