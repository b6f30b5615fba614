"""DLQ tooling over ``dlq_events``: list, inspect, reprocess, resolve, report.

Reprocess re-emits the original event through the outbox; the normalizer's idempotent
insert means reprocessing twice never duplicates a canonical row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from exchange.adapters.postgres import Connection, Database
from exchange.events import RecordIngestedV2, decode_event, encode_event
from exchange.outbox import OutboxMessage, enqueue

__all__ = ("DlqEntryChanged", "DlqEntryNotFound", "DlqTools", "NotReprocessable")


class DlqEntryNotFound(LookupError):
    pass


class DlqEntryChanged(ValueError):
    """The entry is no longer in the status the caller acted on (a double submit, or another
    operator first): nothing was done."""

    def __init__(self, entry_id: int, status: str) -> None:
        super().__init__(f"DLQ entry {entry_id} is {status} now")
        self.status = status


class NotReprocessable(ValueError):
    pass


_COLUMNS = """
id, record_id::text AS record_id, event_id::text AS event_id, event_version, dlq_topic, source_topic,
kafka_partition, kafka_offset, error_type, error_message, error_stage, attempts, failed_at, status,
resolved_at, resolved_by, resolution_reason, created_at
"""


def _row(record: Any, *, with_event: bool = False) -> dict[str, Any]:
    out = {k: v for k, v in dict(record).items() if k != "original_event"}
    for key in ("failed_at", "resolved_at", "created_at"):
        if isinstance(out.get(key), dt.datetime):
            out[key] = out[key].isoformat()
    if with_event:
        out["original_event"] = record["original_event"]
    return out


# Served by ix_dlq_events_status_failed_at (status first): reads the open entries only.
_OPEN_COUNTS = """
SELECT error_stage, error_type, count(*) AS n FROM dlq_events WHERE status = 'open'
GROUP BY 1, 2 ORDER BY n DESC LIMIT 200
"""


class DlqTools:
    def __init__(self, db: Database, *, topic_v1: str, topic_v2: str) -> None:
        self._db = db
        self._topics = (topic_v1, topic_v2)

    async def list(
        self,
        *,
        topic: str | None = None,
        stage: str | None = None,
        error_type: str | None = None,
        status: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; ``before`` (an entry id) pages on: the entries listed after that one."""
        sql = f"""
        SELECT {_COLUMNS} FROM dlq_events
        WHERE ($1::text IS NULL OR dlq_topic = $1) AND ($2::text IS NULL OR error_stage = $2)
          AND ($3::text IS NULL OR error_type = $3) AND ($4::text IS NULL OR status = $4)
          AND ($5::timestamptz IS NULL OR failed_at >= $5)
          AND ($7::bigint IS NULL OR (failed_at, id) < (SELECT failed_at, id FROM dlq_events WHERE id = $7))
        ORDER BY failed_at DESC, id DESC LIMIT $6
        """
        async with self._db.connection() as conn:
            rows = await conn.fetch(sql, topic, stage, error_type, status, since, limit, before)
        return [_row(r) for r in rows]

    async def _get(self, conn: Connection, entry_id: int, *, expect_status: tuple[str, ...] | None = None) -> Any:
        """The entry; with ``expect_status``, locked for the caller's transaction and only while in
        one of those statuses (``DlqEntryChanged`` else), so two submits of one action cannot both pass."""
        lock = " FOR UPDATE" if expect_status is not None else ""
        row = await conn.fetchrow(f"SELECT {_COLUMNS}, original_event FROM dlq_events WHERE id = $1{lock}", entry_id)
        if row is None:
            raise DlqEntryNotFound(f"no DLQ entry {entry_id}")
        if expect_status is not None and row["status"] not in expect_status:
            raise DlqEntryChanged(entry_id, row["status"])
        return row

    async def inspect(self, entry_id: int) -> dict[str, Any]:
        async with self._db.connection() as conn:
            row = await self._get(conn, entry_id)
            history = await conn.fetch(
                """SELECT pipeline, attempt_no, status, started_at, ended_at, result, error_type, error_message,
                          error_stage, transient
                   FROM processing_attempts WHERE record_id = $1::uuid ORDER BY attempt_no""",
                row["record_id"],
            )
            state = await conn.fetchrow(
                "SELECT status, attempt_count, last_error_type, last_error_stage, updated_at "
                "FROM processing_stage_state WHERE record_id = $1::uuid", row["record_id"],
            )
        entry = _row(row, with_event=True)
        entry["ledger"] = [
            {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in dict(h).items()} for h in history
        ]
        entry["stage_state"] = (
            {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in dict(state).items()}
            if state is not None else None
        )
        return entry

    async def reprocess(self, conn: Connection, entry_id: int, *,
                        expect_status: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Re-emit the original event (in the caller's transaction, with its audit row); with
        ``expect_status``, only from one of those statuses."""
        row = await self._get(conn, entry_id, expect_status=expect_status)
        try:
            event = decode_event(msgspec.json.encode(row["original_event"]))
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise NotReprocessable("the original event could not be decoded; fix and replay the source") from None
        topic = self._topics[1] if isinstance(event, RecordIngestedV2) else self._topics[0]
        await enqueue(conn, [OutboxMessage(topic=topic, key=event.record_id, payload=encode_event(event),
                                           headers={"correlation_id": event.correlation_id})])
        await conn.execute("UPDATE dlq_events SET status = 'reprocessed' WHERE id = $1", entry_id)
        return {"id": entry_id, "record_id": event.record_id, "status": "reprocessed", "topic": topic}

    async def resolve(self, conn: Connection, entry_id: int, *, actor: str, reason: str,
                      expect_status: tuple[str, ...] | None = None) -> dict[str, Any]:
        await self._get(conn, entry_id, expect_status=expect_status)
        await conn.execute(
            "UPDATE dlq_events SET status = 'resolved', resolved_at = now(), resolved_by = $2, "
            "resolution_reason = $3 WHERE id = $1",
            entry_id, actor, reason,
        )
        return {"id": entry_id, "status": "resolved"}

    async def open_counts(self) -> dict[tuple[str, str], int]:
        """Open entries by (stage, error type), for a gauge; at most 200 pairs, the largest (error
        types are class names, but a gauge's label values must stay bounded whatever the table holds)."""
        async with self._db.connection() as conn:
            rows = await conn.fetch(_OPEN_COUNTS)
        return {(r["error_stage"], r["error_type"]): int(r["n"]) for r in rows}

    async def report(self, hours: int) -> dict[str, Any]:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                "SELECT error_stage, error_type, status, count(*) AS n FROM dlq_events WHERE failed_at >= $1 "
                "GROUP BY 1, 2, 3", since,
            )
        by_stage: dict[str, int] = {}
        by_type: dict[str, int] = {}
        by_status: dict[str, int] = {}
        for r in rows:
            by_stage[r["error_stage"]] = by_stage.get(r["error_stage"], 0) + r["n"]
            by_type[r["error_type"]] = by_type.get(r["error_type"], 0) + r["n"]
            by_status[r["status"]] = by_status.get(r["status"], 0) + r["n"]
        return {"hours": hours, "since": since.isoformat(), "total": sum(by_stage.values()),
                "by_stage": by_stage, "by_error_type": by_type, "by_status": by_status}
