"""Idempotent ingest: raw bytes to S3, then idempotency + manifest + outbox in ONE transaction.

Concurrency: requests with one (client, key) are serialized by a transaction-scoped
advisory lock taken before the lookup, so exactly one of them writes; the others wait
and then replay its stored response. The S3 PUT happens while that lock is held (and
before COMMIT): a crash between the PUT and the COMMIT leaves an orphan object, which
`exchange reconcile` finds and quarantines; it never leaves rows without an object.

Group commit (ADR 0003): the requests in flight together share that transaction. A batch
locks all its keys (ascending, so batches never deadlock), looks them all up in one
statement, PUTs the new bodies concurrently, writes every accepted record's three rows in
one statement and commits once. Each record's rows still commit together, with its object
already written; a lone request is a batch of one and waits for nothing. Per record the
answer is what it would have been alone: a replay, a 409, a 503 for its own failed PUT,
or a 202. The database being down fails the whole batch (503 for all); any other error
re-runs the batch one request at a time, so one bad request fails alone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from exchange.adapters.objectstore import ObjectStore
from exchange.adapters.postgres import Connection, Database, advisory_key, unnest_columns
from exchange.errors import DatabaseUnavailable, DuplicateKeyConflict, ExchangeError, ObjectStoreUnavailable
from exchange.events import (
    RawObject,
    RecordIngested,
    encode_event,
    format_timestamp,
    make_event,
    new_event_id,
    uuid7,
)
from exchange.ops.metrics import Metrics
from exchange.runtime.batcher import Batcher

if TYPE_CHECKING:
    from prometheus_client import Histogram

__all__ = ("IngestCommand", "IngestOutcome", "IngestService")


@dataclass(frozen=True, slots=True)
class IngestCommand:
    version: Literal[1, 2]
    client_id: str
    idempotency_key: str
    body: bytes
    correlation_id: str
    source: str
    record_kind: str | None = None
    schema_hint: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    response: dict[str, Any]
    replayed: bool


@dataclass(frozen=True, slots=True)
class _Request:
    command: IngestCommand
    sha256: str


_Answer = IngestOutcome | ExchangeError
"""What one request of a batch gets: its outcome, or the error to raise for it alone."""


@dataclass(frozen=True, slots=True)
class _Row:
    """One accepted record's three rows; the fields are ``_RECORD``'s arrays, in its order."""

    record_id: str
    source: str
    object_key: str
    sha256: str
    size_bytes: int
    event_version: str
    topic: str
    payload: str
    headers: str
    client_id: str
    key: str
    response: str
    etag: str | None
    record_kind: str | None
    schema_hint: str | None


# The stored, unexpired responses of a batch's keys, by position in the batch (1-based).
_LOOKUP = """
SELECT r.n, i.request_sha256, i.response
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS r(client_id, key, n)
JOIN idempotency_keys AS i ON i.client_id = r.client_id AND i.key = r.key AND i.expires_at > now()
"""

# One round-trip for a batch's rows; an expired idempotency row is replaced.
_RECORD = """
WITH r AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                         $15::text[])
        AS r(record_id, source, object_key, sha256, size_bytes, event_version, topic, payload, headers,
             client_id, key, response, etag, record_kind, schema_hint)
), manifest AS (
    INSERT INTO raw_object_manifest
        (record_id, source, bucket, object_key, sha256, size_bytes, event_version, state,
         etag, record_kind, schema_hint, client_id)
    SELECT record_id, source, $16, object_key, sha256, size_bytes, event_version, 'enqueued',
           etag, record_kind, schema_hint, client_id FROM r
), outbox AS (
    INSERT INTO outbox_events (topic, key, payload, headers)
    SELECT topic, record_id::text, payload::jsonb, headers::jsonb FROM r
)
INSERT INTO idempotency_keys
    (client_id, key, request_sha256, record_id, status_code, response, created_at, expires_at)
SELECT client_id, key, sha256, record_id, 202, response::jsonb, now(), now() + make_interval(hours => $17)
FROM r
ON CONFLICT (client_id, key) DO UPDATE SET
    request_sha256 = EXCLUDED.request_sha256,
    record_id = EXCLUDED.record_id,
    status_code = EXCLUDED.status_code,
    response = EXCLUDED.response,
    created_at = EXCLUDED.created_at,
    expires_at = EXCLUDED.expires_at
WHERE idempotency_keys.expires_at <= now()
"""

_json = msgspec.json.Encoder()

_PHASES = ("begin", "lookup", "put", "write", "commit")


class _Laps:
    """Where a batch's time goes: each call observes the time since the previous one (or since
    the batch began) under its phase, so the phases of a batch add up to its whole."""

    def __init__(self, phases: dict[str, Histogram]) -> None:
        self._phases = phases
        self._last = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self._phases[phase].observe(now - self._last)
        self._last = now


class IngestService:
    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        *,
        metrics: Metrics,
        topic_v1: str,
        topic_v2: str,
        retention_hours: int,
        schema_hints: tuple[str, ...],
        batch_max: int = 64,
        batches_in_flight: int = 2,
    ) -> None:
        self._db = db
        self._store = store
        self._metrics = metrics
        self.schema_hints = schema_hints
        """The v2 ``schema_hint`` values this deployment accepts."""
        self._topics = {1: topic_v1, 2: topic_v2}
        self._retention_hours = retention_hours
        self._phases = {phase: metrics.ingest_batch_phase.labels(phase) for phase in _PHASES}
        self._batches: Batcher[_Request, _Answer] = Batcher(
            self._accept_batch,
            # One key twice in a batch would be two writers in one transaction: the repeat
            # goes in the next batch, and finds the first one's row there.
            key=lambda r: (r.command.client_id, r.command.idempotency_key),
            max_batch=batch_max,
            max_in_flight=batches_in_flight,
            fail_together=(DatabaseUnavailable,),
        )

    async def accept(self, cmd: IngestCommand) -> IngestOutcome:
        answer = await self._batches.submit(_Request(cmd, hashlib.sha256(cmd.body).hexdigest()))
        if isinstance(answer, ExchangeError):
            raise answer
        return answer

    async def _accept_batch(self, requests: Sequence[_Request]) -> list[_Answer]:
        # Four round-trips per batch: BEGIN with the locks, the lookup, the rows, COMMIT.
        self._metrics.ingest_batch_size.observe(len(requests))
        lap = _Laps(self._phases)
        locks = [advisory_key(r.command.client_id, r.command.idempotency_key) for r in requests]
        async with self._db.transaction(advisory_locks=locks) as conn:
            lap("begin")
            answers = await self._stored_answers(conn, requests)
            lap("lookup")
            fresh = [i for i, answer in enumerate(answers) if answer is None]
            record_ids = [str(uuid7()) for _ in fresh]
            keys = [f"{requests[i].command.source}/{rid}.json" for i, rid in zip(fresh, record_ids, strict=True)]
            puts = await asyncio.gather(
                *(self._store.put(key, requests[i].command.body) for i, key in zip(fresh, keys, strict=True)),
                return_exceptions=True,
            )
            lap("put")
            rows: list[_Row] = []
            for i, record_id, key, put in zip(fresh, record_ids, keys, puts, strict=True):
                if isinstance(put, ObjectStoreUnavailable):
                    answers[i] = put  # this request alone: 503, and no rows for it
                elif isinstance(put, BaseException):
                    raise put
                else:
                    command = requests[i].command
                    response = {"record_id": record_id, "correlation_id": command.correlation_id,
                                "status": "accepted"}
                    rows.append(self._row(requests[i], record_id, key, put, response))
                    answers[i] = IngestOutcome(response=response, replayed=False)
            if rows:
                await conn.execute(_RECORD, *unnest_columns(rows), self._store.bucket, self._retention_hours)
            lap("write")
        lap("commit")
        # Every request has its answer now (a replay, a conflict, a failed PUT or a new record).
        return [answer for answer in answers if answer is not None]

    @staticmethod
    async def _stored_answers(conn: Connection, requests: Sequence[_Request]) -> list[_Answer | None]:
        """Per request: the replay or conflict its key's stored response means, else None (new)."""
        rows = await conn.fetch(
            _LOOKUP, [r.command.client_id for r in requests], [r.command.idempotency_key for r in requests]
        )
        answers: list[_Answer | None] = [None] * len(requests)
        for row in rows:
            i = row["n"] - 1
            if row["request_sha256"] != requests[i].sha256:
                answers[i] = DuplicateKeyConflict()
            else:
                answers[i] = IngestOutcome(response=dict(row["response"]), replayed=True)
        return answers

    def _row(
        self, request: _Request, record_id: str, object_key: str, etag: str | None, response: dict[str, Any]
    ) -> _Row:
        cmd = request.command
        event = self._event(cmd, record_id, object_key, request.sha256)
        headers = {"correlation_id": cmd.correlation_id}
        if cmd.traceparent:
            headers["traceparent"] = cmd.traceparent
        return _Row(
            record_id=record_id, source=cmd.source, object_key=object_key, sha256=request.sha256,
            size_bytes=len(cmd.body), event_version=str(cmd.version), topic=self._topics[cmd.version],
            payload=encode_event(event).decode(), headers=_json.encode(headers).decode(),
            client_id=cmd.client_id, key=cmd.idempotency_key, response=_json.encode(response).decode(),
            # With the version, what a replay needs to build this object's event without
            # reading it while it is listed with this ETag (replay/_raw.py, ADR 0005).
            etag=etag, record_kind=cmd.record_kind, schema_hint=cmd.schema_hint,
        )

    def _event(self, cmd: IngestCommand, record_id: str, object_key: str, sha256: str) -> RecordIngested:
        return make_event(
            "1" if cmd.version == 1 else "2",
            event_id=new_event_id(),
            occurred_at=format_timestamp(dt.datetime.now(dt.UTC)),
            correlation_id=cmd.correlation_id,
            source=cmd.source,
            record_id=record_id,
            raw_object=RawObject(bucket=self._store.bucket, key=object_key, sha256=sha256, size_bytes=len(cmd.body)),
            record_kind=cmd.record_kind,
            schema_hint=cmd.schema_hint,
        )


_PURGE = """
DELETE FROM idempotency_keys
WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT $1)
"""


async def purge_expired_keys(db: Database, *, batch: int = 5000) -> int:
    """Delete expired idempotency rows in small batches (short locks); returns the count."""
    total = 0
    while True:
        async with db.transaction() as conn:
            status = await conn.execute(_PURGE, batch)
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < batch:
            return total
