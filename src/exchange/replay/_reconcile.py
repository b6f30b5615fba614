"""Reconcile raw storage <-> raw_object_manifest <-> canonical_records for one source.

Findings:
- ``orphans``: raw objects without a manifest row, older than a grace period (the crash
  window between the S3 write and the ingest commit; younger ones may be in flight);
- ``stuck``: manifest rows whose outbox row is still unpublished after a threshold;
- ``missing_canonical``: manifest + raw object but no canonical row, and no event in flight
  (an outbox row unpublished or published within the in-flight window);
- ``canonical_without_raw``: canonical rows whose raw object is gone.

``repair`` re-emits the missing (deterministic replay events through the outbox) and moves
orphans under ``_quarantine/`` (never deletes them) with a manifest row in state
``orphaned``. Re-emitted records are in flight afterwards, so a second repair finds nothing
to do (until the in-flight window passes with the record still missing).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

from exchange.adapters.objectstore import ObjectInfo, ObjectStore
from exchange.adapters.postgres import Database
from exchange.errors import ObjectNotFound
from exchange.ingest import manifest_for_source, record_orphan
from exchange.normalize import canonical_ids_for_source
from exchange.outbox import enqueue, outbox_status_for_keys
from exchange.replay._raw import parse_key, raw_records
from exchange.replay._replay import events_for, outbox_message

__all__ = ("MAX_WINDOW_S", "QUARANTINE_PREFIX", "ReconcileOptions", "Reconciler")

QUARANTINE_PREFIX = "_quarantine/"  # no source can start with "_", so no listing of a source sees it
MAX_WINDOW_S = 10 * 365 * 24 * 3600.0
"""The longest grace, stuck or in-flight window a reconcile takes (ten years): longer says
nothing more, and ``now - window`` must stay a date."""
_SHOW = 100


@dataclass(frozen=True, slots=True)
class ReconcileOptions:
    source: str
    repair: bool = False
    orphan_grace_s: float = 600.0
    stuck_after_s: float = 900.0
    in_flight_s: float = 300.0

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "repair": self.repair, "orphan_grace_s": self.orphan_grace_s,
                "stuck_after_s": self.stuck_after_s, "in_flight_s": self.in_flight_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReconcileOptions:
        return cls(source=str(data["source"]), repair=bool(data.get("repair", False)),
                   orphan_grace_s=float(data.get("orphan_grace_s", 600.0)),
                   stuck_after_s=float(data.get("stuck_after_s", 900.0)),
                   in_flight_s=float(data.get("in_flight_s", 300.0)))


class Reconciler:
    def __init__(self, db: Database, store: ObjectStore, *, topic_v1: str, topic_v2: str) -> None:
        self._db = db
        self._store = store
        self._topics = (topic_v1, topic_v2)

    async def run(self, opts: ReconcileOptions) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        raw = await raw_records(self._store, opts.source)
        async with self._db.connection() as conn:
            manifest = await manifest_for_source(conn, opts.source)
            canonical = await canonical_ids_for_source(conn, opts.source)
            live = [rid for rid, m in manifest.items() if m.state != "orphaned"]
            outbox = await outbox_status_for_keys(conn, live)

        grace = dt.timedelta(seconds=opts.orphan_grace_s)
        orphans = sorted(rid for rid, info in raw.items() if rid not in manifest and now - info.last_modified >= grace)
        stuck: list[str] = []
        missing: list[str] = []
        in_flight = 0
        for rid in sorted(live):
            status = outbox.get(rid)
            if status is not None and status.pending:
                assert status.oldest_pending is not None
                if now - status.oldest_pending >= dt.timedelta(seconds=opts.stuck_after_s):
                    stuck.append(rid)
                elif rid not in canonical:
                    in_flight += 1
                continue
            if rid in canonical or rid not in raw:
                continue
            recent = status is not None and status.last_published is not None and (
                now - status.last_published < dt.timedelta(seconds=opts.in_flight_s)
            )
            if recent:
                in_flight += 1
            else:
                missing.append(rid)
        without_raw = sorted(rid for rid in canonical if rid not in raw)

        report: dict[str, Any] = {
            "source": opts.source,
            "raw_count": len(raw),
            "manifest_count": len(manifest),
            "canonical_count": len(canonical),
            "in_flight_count": in_flight,
            "orphans": {"count": len(orphans), "record_ids": orphans[:_SHOW]},
            "stuck": {"count": len(stuck), "record_ids": stuck[:_SHOW]},
            "missing_canonical": {"count": len(missing), "record_ids": missing[:_SHOW]},
            "canonical_without_raw": {"count": len(without_raw), "record_ids": without_raw[:_SHOW]},
            "repair": opts.repair,
        }
        if opts.repair:
            report["repaired"] = {
                "re_emitted": await self._re_emit([raw[rid] for rid in missing]),
                "quarantined": await self._quarantine(opts.source, [raw[rid] for rid in orphans]),
            }
        report["clean"] = not (orphans or stuck or missing or without_raw)
        return report

    async def _re_emit(self, infos: list[ObjectInfo]) -> int:
        emitted = 0
        for start in range(0, len(infos), 500):
            # Repair reads every object: it runs after something went wrong, and is rare.
            built, _read = await events_for(self._store, infos[start:start + 500], "auto")
            messages = [outbox_message(e, *self._topics) for _i, e in built if not isinstance(e, str)]
            async with self._db.transaction() as conn:
                emitted += await enqueue(conn, messages)
        return emitted

    async def _quarantine(self, source: str, infos: list[ObjectInfo]) -> int:
        import hashlib  # noqa: PLC0415 - only repair hashes objects

        moved = 0
        sem = asyncio.Semaphore(16)

        async def one(info: ObjectInfo) -> None:
            nonlocal moved
            ref = parse_key(info.key)
            assert ref is not None
            target = QUARANTINE_PREFIX + info.key
            async with sem:
                try:
                    body = await self._store.get(info.key)
                except ObjectNotFound:
                    return  # already moved by a concurrent repair
                # Copy, record, then delete: a crash in between leaves both copies, never none.
                await self._store.copy(info.key, target)
                async with self._db.transaction() as conn:
                    await record_orphan(conn, record_id=ref.record_id, source=source, bucket=self._store.bucket,
                                        quarantine_key=target, sha256=hashlib.sha256(body).hexdigest(),
                                        size=len(body))
                await self._store.delete(info.key)
                moved += 1

        await asyncio.gather(*(one(i) for i in infos))
        return moved
