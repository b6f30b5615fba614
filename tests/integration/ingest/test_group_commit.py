"""Group commit (ADR 0003): requests in flight together share one ingest transaction, and
each still gets the answer it would have had alone. Real PostgreSQL and S3; the service is
driven directly so a test controls exactly which requests arrive together.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, Literal

import pytest

from exchange.adapters.objectstore import ObjectStore, make_object_store
from exchange.adapters.postgres import Database
from exchange.errors import DuplicateKeyConflict, ObjectStoreUnavailable
from exchange.events import TOPIC_V1, TOPIC_V2
from exchange.ingest import IngestCommand, IngestOutcome, IngestService
from exchange.ops.metrics import Metrics
from exchange.settings import Settings
from tests.integration.ingest._support import body_for, new_key, written
from tests.support.db import fetch

pytestmark = pytest.mark.timeout(120)


def _command(source: str, key: str, *, n: int = 0, version: Literal[1, 2] = 1, client: str = "dev") -> IngestCommand:
    body = json.dumps(body_for(version, source, payload={"n": n})).encode()
    return IngestCommand(version=version, client_id=client, idempotency_key=key, body=body,
                         correlation_id=f"cid-{key}", source=source,
                         record_kind="claim" if version == 2 else None,
                         schema_hint="partnerA.v2" if version == 2 else None)


def _batch_sizes(metrics: Metrics) -> tuple[float, float]:
    """(batches, requests) the ingest batch-size histogram has seen."""
    count = metrics.registry.get_sample_value("exchange_ingest_batch_size_requests_count") or 0.0
    total = metrics.registry.get_sample_value("exchange_ingest_batch_size_requests_sum") or 0.0
    return count, total


class _FailingFor:
    """The real object store, except that PUTs under one prefix fail as if S3 were down for
    them: fault injection for one request inside a batch (a real outage fails them all)."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self._store = store
        self._prefix = prefix
        self.bucket = store.bucket

    async def put(self, key: str, body: bytes, *, content_type: str = "application/json") -> None:
        if key.startswith(self._prefix):
            raise ObjectStoreUnavailable("object store put failed (injected)")
        await self._store.put(key, body, content_type=content_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.fixture
async def store(app_settings: Settings) -> AsyncIterator[ObjectStore]:
    s = make_object_store(app_settings.object_store)
    try:
        yield s
    finally:
        await s.close()


def _service(db: Database, store: Any, metrics: Metrics, **kwargs: Any) -> IngestService:
    return IngestService(db, store, metrics=metrics, topic_v1=TOPIC_V1, topic_v2=TOPIC_V2,
                         retention_hours=24, schema_hints=("partnerA.v2",), **kwargs)


async def test_concurrent_requests_share_transactions_and_each_gets_its_own_complete_record(
    db: Database, store: ObjectStore, app_settings: Settings, unique: str
) -> None:
    source = f"gc-many-{unique}"
    metrics = Metrics()
    service = _service(db, store, metrics)
    commands = [_command(source, new_key("gc"), n=n, version=1 if n % 2 else 2) for n in range(40)]

    outcomes = await asyncio.gather(*(service.accept(c) for c in commands))

    batches, requests = _batch_sizes(metrics)
    assert requests == 40
    assert batches < 40, "no two requests shared a transaction"
    record_ids = [o.response["record_id"] for o in outcomes]
    assert len(set(record_ids)) == 40 and not any(o.replayed for o in outcomes)
    for command, outcome in zip(commands, outcomes, strict=True):
        assert outcome.response["correlation_id"] == command.correlation_id
    after = await written(app_settings, source, keys=tuple(c.idempotency_key for c in commands))
    assert (after.idempotency, after.outbox, after.manifest) == (40, 40, 40)
    assert after.objects == tuple(sorted(f"{source}/{rid}.json" for rid in record_ids))
    # Each record's rows point at each other: the key's response, the manifest, the event.
    rows = await fetch(
        app_settings.database.dsn,
        "SELECT i.key, i.record_id::text AS rid, m.event_version, o.payload->>'event_version' AS ev, o.topic "
        "FROM idempotency_keys i JOIN raw_object_manifest m ON m.record_id = i.record_id "
        "JOIN outbox_events o ON o.key = i.record_id::text WHERE i.key = ANY($1::text[])",
        [c.idempotency_key for c in commands],
    )
    by_key = {r["key"]: r for r in rows}
    for command, rid in zip(commands, record_ids, strict=True):
        row = by_key[command.idempotency_key]
        assert row["rid"] == rid
        assert row["event_version"] == row["ev"] == str(command.version)
        assert row["topic"] == (TOPIC_V1 if command.version == 1 else TOPIC_V2)


async def test_each_batch_reports_where_its_time_went_phase_by_phase(
    db: Database, store: ObjectStore, unique: str
) -> None:
    source = f"gc-phases-{unique}"
    metrics = Metrics()
    service = _service(db, store, metrics)
    began = time.perf_counter()

    await asyncio.gather(*(service.accept(_command(source, new_key("ph"), n=n)) for n in range(12)))

    wall = time.perf_counter() - began
    batches, _ = _batch_sizes(metrics)

    def phase(name: str, sample: str) -> float:
        return metrics.registry.get_sample_value(f"exchange_ingest_batch_phase_seconds_{sample}",
                                                 {"phase": name}) or 0.0

    names = ("begin", "lookup", "put", "write", "commit")
    assert [phase(name, "count") for name in names] == [batches] * 5  # every batch, every phase
    assert all(phase(name, "sum") > 0 for name in names)
    # The laps follow each other: each batch's phases add up to no more than the batches took.
    assert sum(phase(name, "sum") for name in names) <= wall * batches


async def test_a_batch_answers_replays_conflicts_repeats_and_new_records_as_if_each_were_alone(
    db: Database, store: ObjectStore, app_settings: Settings, unique: str
) -> None:
    source = f"gc-mixed-{unique}"
    service = _service(db, store, Metrics())
    stored = _command(source, new_key("stored"), n=1)
    first = await service.accept(stored)
    other_client = replace(stored, client_id="client-b")  # same key, another client: its own record
    changed = replace(stored, body=json.dumps(body_for(1, source, payload={"n": 2})).encode())
    fresh = _command(source, new_key("fresh"), n=3)

    results = await asyncio.gather(
        service.accept(stored), service.accept(changed), service.accept(fresh), service.accept(fresh),
        service.accept(other_client), return_exceptions=True,
    )

    replay, conflict, fresh_a, fresh_b, other = results
    assert isinstance(replay, IngestOutcome) and replay.replayed and replay.response == first.response
    assert isinstance(conflict, DuplicateKeyConflict)
    # The same key twice in flight: one record; whichever ran second replays the first.
    assert isinstance(fresh_a, IngestOutcome) and isinstance(fresh_b, IngestOutcome)
    assert fresh_a.response == fresh_b.response
    assert sorted([fresh_a.replayed, fresh_b.replayed]) == [False, True]
    assert isinstance(other, IngestOutcome) and not other.replayed
    assert other.response["record_id"] != first.response["record_id"]
    after = await written(app_settings, source, keys=(stored.idempotency_key, fresh.idempotency_key))
    assert (after.idempotency, after.outbox, after.manifest, len(after.objects)) == (3, 3, 3, 3)


async def test_a_failed_put_fails_its_own_request_only_and_leaves_no_rows_for_it(
    db: Database, store: ObjectStore, app_settings: Settings, unique: str
) -> None:
    good, bad = f"gc-good-{unique}", f"gc-bad-{unique}"
    metrics = Metrics()
    service = _service(db, _FailingFor(store, f"{bad}/"), metrics)
    commands = [_command(good if n % 4 else bad, new_key("gc-put"), n=n) for n in range(16)]

    results = await asyncio.gather(*(service.accept(c) for c in commands), return_exceptions=True)

    batches, requests = _batch_sizes(metrics)
    assert batches < requests, "the failing and the healthy requests never shared a batch"
    for command, result in zip(commands, results, strict=True):
        if command.source == bad:
            assert isinstance(result, ObjectStoreUnavailable)
        else:
            assert isinstance(result, IngestOutcome) and not result.replayed
    failed = await written(app_settings, bad, keys=tuple(c.idempotency_key for c in commands if c.source == bad))
    assert failed.nothing
    ok = await written(app_settings, good, keys=tuple(c.idempotency_key for c in commands if c.source == good))
    assert (ok.idempotency, ok.outbox, ok.manifest, len(ok.objects)) == (12, 12, 12, 12)
    # The failed keys are free: a retry with the same key and body is a new record.
    retry = _service(db, store, Metrics())
    again = await retry.accept(next(c for c in commands if c.source == bad))
    assert not again.replayed


async def test_batches_never_exceed_their_bound_and_every_request_is_answered(
    db: Database, store: ObjectStore, unique: str
) -> None:
    metrics = Metrics()
    service = _service(db, store, metrics, batch_max=4, batches_in_flight=1)
    commands = [_command(f"gc-bound-{unique}", new_key("gc-bound"), n=n) for n in range(12)]

    outcomes = await asyncio.gather(*(service.accept(c) for c in commands))

    assert len({o.response["record_id"] for o in outcomes}) == 12
    batches, requests = _batch_sizes(metrics)
    assert requests == 12 and batches >= 3  # at most 4 a batch
    assert metrics.registry.get_sample_value("exchange_ingest_batch_size_requests_bucket", {"le": "4.0"}) == batches
