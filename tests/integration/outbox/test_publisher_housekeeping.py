"""Publisher housekeeping: retention of published rows, backlog metrics."""

from __future__ import annotations

from exchange.adapters.kafka import AsyncProducer
from exchange.adapters.postgres import Database
from exchange.ops.metrics import Metrics
from exchange.outbox import OutboxPublisher, outbox_stats
from exchange.settings import Settings
from tests.support.app import DEV, make_settings, running_app
from tests.support.db import fetch, fetchval


async def test_published_rows_past_retention_are_deleted_and_pending_rows_never(
    stack_env: dict[str, str], app_settings: Settings, db: Database, unique: str
) -> None:
    dsn = stack_env["DATABASE_URL"]
    topic = f"retention-{unique}"
    await fetch(dsn, "INSERT INTO outbox_events (topic, key, payload, published_at) VALUES "
                     "($1, 'old', '{}'::jsonb, now() - interval '48 hours'), "
                     "($1, 'fresh', '{}'::jsonb, now() - interval '1 hour'), "
                     "($1, 'pending', '{}'::jsonb, NULL)", topic)
    publisher = OutboxPublisher(db, lambda: AsyncProducer(app_settings.kafka.brokers), Metrics(),
                                batch_size=10, retention_hours=24)
    assert await publisher.purge_published() >= 1
    stats = await outbox_stats(db)
    keys = {r["key"] for r in await fetch(dsn, "SELECT key FROM outbox_events WHERE topic=$1", topic)}
    assert keys == {"fresh", "pending"}
    assert stats["backlog"] >= 1
    assert stats["oldest_pending_age_s"] >= 0
    await fetch(dsn, "DELETE FROM outbox_events WHERE topic=$1", topic)


async def test_metrics_expose_backlog_published_and_http_counts(stack_env: dict[str, str], unique: str) -> None:
    settings = make_settings(stack_env)
    async with running_app(settings) as client:
        body = {"source": f"m-{unique}", "record_type": "claim",
                "patient": {"first_name": "M", "last_name": "N", "dob": "1977-07-07"}, "payload": {}}
        assert (await client.post("/v1/ingest", json=body,
                                  headers={**DEV, "Idempotency-Key": f"{unique}-m"})).status_code == 202
        text = (await client.get("/metrics")).text
        health = (await client.get("/health/detailed")).json()
    for name in ("exchange_http_requests_total", "exchange_ingest_requests_total", "exchange_outbox_backlog_events",
                 "exchange_outbox_oldest_pending_age_seconds", "exchange_task_running"):
        assert name in text
    assert 'route="/v1/ingest"' in text
    assert "backlog" in health["dependencies"]["outbox"]
    assert await fetchval(stack_env["DATABASE_URL"], "SELECT count(*) FROM raw_object_manifest WHERE source=$1",
                          f"m-{unique}") == 1
