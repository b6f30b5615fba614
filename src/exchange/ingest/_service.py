"""Idempotent ingest: raw bytes to S3, then idempotency + manifest + outbox in ONE transaction.

Concurrency: requests with one (client, key) are serialized by a transaction-scoped
advisory lock taken before the lookup, so exactly one of them writes; the others wait
and then replay its stored response. The S3 PUT happens while that lock is held (and
before COMMIT): a crash between the PUT and the COMMIT leaves an orphan object, which
`exchange reconcile` finds and quarantines; it never leaves rows without an object.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from exchange.adapters.objectstore import ObjectStore
from exchange.adapters.postgres import Database, advisory_key
from exchange.errors import DuplicateKeyConflict
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


_LOOKUP = """
SELECT request_sha256, response
FROM idempotency_keys
WHERE client_id = $1 AND key = $2 AND expires_at > now()
"""

# One round-trip for the three rows; an expired idempotency row is replaced.
_RECORD = """
WITH manifest AS (
    INSERT INTO raw_object_manifest
        (record_id, source, bucket, object_key, sha256, size_bytes, event_version, state)
    VALUES ($1, $2, $3, $4, $5, $6, $7, 'enqueued')
), outbox AS (
    INSERT INTO outbox_events (topic, key, payload, headers)
    VALUES ($8, $9, $10::jsonb, $11::jsonb)
)
INSERT INTO idempotency_keys
    (client_id, key, request_sha256, record_id, status_code, response, created_at, expires_at)
VALUES ($12, $13, $5, $1, 202, $14::jsonb, now(), now() + make_interval(hours => $15))
ON CONFLICT (client_id, key) DO UPDATE SET
    request_sha256 = EXCLUDED.request_sha256,
    record_id = EXCLUDED.record_id,
    status_code = EXCLUDED.status_code,
    response = EXCLUDED.response,
    created_at = EXCLUDED.created_at,
    expires_at = EXCLUDED.expires_at
WHERE idempotency_keys.expires_at <= now()
"""


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
    ) -> None:
        self._db = db
        self._store = store
        self._metrics = metrics
        self.schema_hints = schema_hints
        """The v2 ``schema_hint`` values this deployment accepts."""
        self._topics = {1: topic_v1, 2: topic_v2}
        self._retention_hours = retention_hours

    async def accept(self, cmd: IngestCommand) -> IngestOutcome:
        outcome = await self._accept(cmd)
        self._metrics.ingest_accepted.labels(str(cmd.version), str(outcome.replayed).lower()).inc()
        return outcome

    async def _accept(self, cmd: IngestCommand) -> IngestOutcome:
        request_sha256 = hashlib.sha256(cmd.body).hexdigest()
        # Four round-trips: BEGIN with the lock, lookup, the three rows, COMMIT.
        async with self._db.transaction(advisory_lock=advisory_key(cmd.client_id, cmd.idempotency_key)) as conn:
            existing = await conn.fetchrow(_LOOKUP, cmd.client_id, cmd.idempotency_key)
            if existing is not None:
                if existing["request_sha256"] != request_sha256:
                    raise DuplicateKeyConflict
                return IngestOutcome(response=dict(existing["response"]), replayed=True)

            record_id = str(uuid7())
            object_key = f"{cmd.source}/{record_id}.json"
            await self._store.put(object_key, cmd.body)
            event = self._event(cmd, record_id, object_key, request_sha256)
            response = {"record_id": record_id, "correlation_id": cmd.correlation_id, "status": "accepted"}
            headers = {"correlation_id": cmd.correlation_id}
            if cmd.traceparent:
                headers["traceparent"] = cmd.traceparent
            await conn.execute(
                _RECORD,
                record_id, cmd.source, self._store.bucket, object_key, request_sha256, len(cmd.body),
                str(cmd.version),
                self._topics[cmd.version], record_id, encode_event(event), headers,
                cmd.client_id, cmd.idempotency_key, response, self._retention_hours,
            )
        return IngestOutcome(response=response, replayed=False)

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
