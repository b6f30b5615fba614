"""Replay: re-emit events for a source's raw objects, in key order, through the outbox.

An object listed with the ETag and size ingest stored it with is unchanged since: its event
is built from the manifest (digest, shape) without reading it. Any other object (changed,
orphaned, written before the manifest kept ETags) is read, as every object is with
``read_raw``. Both build the same event for the same bytes (``event_for``).

Each batch's outbox rows and the job checkpoint (the last key emitted) commit in ONE
transaction, so a replay killed at any point resumes (``--resume JOB_ID``) exactly after
the last committed batch: nothing skipped, nothing emitted twice by the replay itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from exchange.adapters.objectstore import ObjectInfo, ObjectStore
from exchange.adapters.postgres import Database
from exchange.events import RecordIngested, RecordIngestedV2, encode_event
from exchange.ingest import StoredObject, stored_objects
from exchange.jobs import JobRun, Jobs
from exchange.normalize import canonical_ids_for_source
from exchange.outbox import OutboxMessage, enqueue
from exchange.replay._raw import (
    EmitVersion,
    RawRef,
    build_replay_event,
    event_for,
    parse_key,
    raw_records,
    stored_shape,
)

__all__ = ("MAX_LIMIT", "Progress", "ReplayParams", "ReplayService", "events_for")

BATCH = 500
MAX_LIMIT = 1_000_000_000
"""The largest ``limit`` a replay takes (a bound for the door, beyond any source's size)."""
FETCH_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class ReplayParams:
    source: str
    limit: int | None = None
    emit_version: EmitVersion = "auto"
    dry_run: bool = False
    read_raw: bool = False
    """Read every object, even those the manifest says are unchanged since ingest."""

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "limit": self.limit, "emit_version": self.emit_version,
                "dry_run": self.dry_run, "read_raw": self.read_raw}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplayParams:
        return cls(source=str(data["source"]), limit=data.get("limit"),
                   emit_version=data.get("emit_version", "auto"), dry_run=bool(data.get("dry_run", False)),
                   read_raw=bool(data.get("read_raw", False)))


@dataclass(slots=True)
class Progress:
    total: int
    done: int = 0
    emitted: int = 0
    read: int = 0
    """Objects read from the store (the rest were built from the manifest)."""
    skipped: dict[str, int] = field(default_factory=dict)
    last_key: str | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "done": self.done, "emitted": self.emitted, "read": self.read,
                "skipped": dict(self.skipped), "last_key": self.last_key}


async def _batches(store: ObjectStore, prefix: str, start_after: str | None) -> AsyncIterator[list[ObjectInfo]]:
    batch: list[ObjectInfo] = []
    async for info in store.list_objects(prefix, start_after=start_after):
        batch.append(info)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _unchanged(info: ObjectInfo, stored: StoredObject | None) -> StoredObject | None:
    """The manifest's facts when the listed object is the one ingest stored (same ETag and
    size: S3 gives a rewritten object a new ETag), else None."""
    if stored is None or info.etag is None or info.etag != stored.etag or info.size != stored.size_bytes:
        return None
    return stored


async def events_for(
    store: ObjectStore, infos: list[ObjectInfo], emit: EmitVersion,
    stored: Mapping[str, StoredObject] | None = None,
) -> tuple[list[tuple[ObjectInfo, RecordIngested | str]], int]:
    """Each object's event (or skip reason), in order, and how many objects were read: from
    ``stored`` when unchanged since ingest, else from the object, fetched concurrently.

    ``FETCH_CONCURRENCY`` workers take the next object to read in turn: no task and semaphore
    round per object, which was a visible share of a replay process's Python time
    (docs/performance.md)."""
    built: list[tuple[ObjectInfo, RecordIngested | str]] = [(info, "") for info in infos]
    to_read: list[tuple[int, RawRef]] = []
    for i, info in enumerate(infos):
        ref = parse_key(info.key)
        if ref is None:
            built[i] = (info, "not_a_record_key")
        elif (known := _unchanged(info, stored.get(info.key) if stored else None)) is not None:
            built[i] = (info, event_for(ref, info, stored_shape(known), known.sha256, known.size_bytes,
                                          store.bucket, emit))
        else:
            to_read.append((i, ref))
    pending = iter(to_read)

    async def worker() -> None:
        for i, ref in pending:
            info = infos[i]
            raw = await store.get(info.key)
            built[i] = (info, build_replay_event(ref, info, raw, store.bucket, emit))

    await asyncio.gather(*(worker() for _ in range(min(FETCH_CONCURRENCY, len(to_read)))))
    return built, len(to_read)


def outbox_message(event: RecordIngested, topic_v1: str, topic_v2: str) -> OutboxMessage:
    topic = topic_v2 if isinstance(event, RecordIngestedV2) else topic_v1
    return OutboxMessage(topic=topic, key=event.record_id, payload=encode_event(event),
                         headers={"correlation_id": event.correlation_id})


class ReplayService:
    def __init__(self, db: Database, store: ObjectStore, jobs: Jobs, *, topic_v1: str, topic_v2: str) -> None:
        self._db = db
        self._store = store
        self._jobs = jobs
        self._topics = (topic_v1, topic_v2)

    async def count(self, source: str) -> int:
        # A listing of its own, before the work: the progress total (and ETA), counted as
        # ``done`` is (every object listed, records or not). Listing is 1,000 keys a request,
        # cheap next to fetching every object.
        return sum([1 async for _ in self._store.list_objects(f"{source}/")])

    async def run(
        self,
        job: JobRun,
        *,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> dict[str, Any]:
        params = ReplayParams.from_dict(job.params)
        checkpoint = await self._jobs.load_checkpoint(job) or {}
        total = await self.count(params.source)
        if params.limit is not None:
            total = min(total, params.limit)
        progress = Progress(total=total, done=int(checkpoint.get("done", 0)),
                            emitted=int(checkpoint.get("emitted", 0)), read=int(checkpoint.get("read", 0)),
                            skipped=dict(checkpoint.get("skipped", {})), last_key=checkpoint.get("last_key"))
        async for listed in _batches(self._store, f"{params.source}/", progress.last_key):
            infos = listed
            if params.limit is not None:
                room = params.limit - progress.emitted
                if room <= 0:
                    break
                infos = listed[:room]
            stored: dict[str, StoredObject] = {}
            if not params.read_raw:
                async with self._db.connection() as conn:
                    stored = await stored_objects(conn, [info.key for info in infos])
            built, read = await events_for(self._store, infos, params.emit_version, stored)
            progress.read += read
            messages: list[OutboxMessage] = []
            for _info, outcome in built:
                if isinstance(outcome, str):
                    progress.skipped[outcome] = progress.skipped.get(outcome, 0) + 1
                else:
                    messages.append(outbox_message(outcome, *self._topics))
            progress.done += len(infos)
            progress.emitted += len(messages)
            progress.last_key = infos[-1].key
            async with self._db.transaction() as conn:
                if not params.dry_run:
                    await enqueue(conn, messages)
                await Jobs.save_checkpoint(conn, job, progress.as_dict())
            if on_progress is not None:
                on_progress(progress)
        return {"source": params.source, "listed": progress.done, "emitted": progress.emitted,
                "read": progress.read, "skipped": progress.skipped, "dry_run": params.dry_run,
                "emit_version": params.emit_version, "read_raw": params.read_raw}

    async def verify(self, source: str) -> dict[str, Any]:
        """Raw vs canonical for a source: ``missing`` are raw record ids without a canonical row."""
        raw_ids = set(await raw_records(self._store, source))
        async with self._db.connection() as conn:
            canonical = await canonical_ids_for_source(conn, source)
        missing = sorted(raw_ids - canonical)
        return {
            "source": source,
            "raw_count": len(raw_ids),
            "canonical_count": len(canonical),
            "missing_count": len(missing),
            "missing": missing[:100],
        }

