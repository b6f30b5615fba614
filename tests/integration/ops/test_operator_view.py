"""What an operator sees, from a live app's /metrics after real traffic: records ingested (every
kind of answer), normalized and dead-lettered through Kafka, a replay job run to its end (which
also brings in a raw object that never went through ingest), a job left running. Then the
dashboard and the alert rules are checked against that very scrape, so neither can name a
metric, a label or a label value the application does not export.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exchange.adapters.kafka import AsyncProducer, ensure_topics
from exchange.adapters.objectstore import make_object_store
from exchange.events import RawObject, encode_event, format_timestamp, make_event, new_event_id, uuid7
from exchange.roles import Role
from exchange_stack import Stack
from tests.support.app import DEV, bearer, make_settings, running_app
from tests.support.db import eventually, fetch, fetchval

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "exchange.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Labels Prometheus itself puts on every series of a target, and the histogram bucket label.
TARGET_LABELS = {"job", "instance", "le"}


@dataclass
class Scrape:
    """One /metrics answer: its samples by name."""

    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Scrape:
        scrape = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                scrape.samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return scrape

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
        return sum(v for lbl, v in self.samples.get(name, []) if labels.items() <= lbl.items())

    def series(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        return [(lbl, v) for lbl, v in self.samples.get(name, []) if labels.items() <= lbl.items()]


@dataclass
class Traffic:
    before: Scrape
    after: Scrape
    topics: dict[str, str]
    source: str
    replay_job_id: str
    health: dict[str, Any]


def _v1(source: str, n: int) -> dict[str, Any]:
    return {"source": source, "record_type": "claim", "payload": {"visit": n},
            "patient": {"first_name": f"Op{n}", "last_name": "Metrics", "dob": "1980-02-03"}}


def _v2(source: str, n: int) -> dict[str, Any]:
    return {"source": source, "record_kind": "claim", "schema_hint": "partnerA.v2", "payload": {"visit": n},
            "patient": {"given_name": f"Op{n}", "family_name": "Metrics", "dob": "1980-02-03"}}


async def _lost_record_event(settings: Any, topic: str, source: str) -> str:
    """An event whose raw object was never written: the normalizer dead-letters it (fetch stage)."""
    record_id = str(uuid7())
    event = make_event("1", event_id=new_event_id(), occurred_at=format_timestamp(dt.datetime.now(dt.UTC)),
                       correlation_id=f"lost-{record_id}", source=source, record_id=record_id,
                       raw_object=RawObject(bucket=settings.object_store.bucket, key=f"{source}/{record_id}.json",
                                            sha256="0" * 64, size_bytes=10))
    producer = AsyncProducer(settings.kafka.brokers)
    await producer.start()
    try:
        await producer.send(topic, key=record_id.encode(), value=encode_event(event))
    finally:
        await producer.close()
    return record_id


@pytest.fixture(scope="module")
async def traffic(stack: Stack, stack_env: dict[str, str]) -> Traffic:
    unique = uuid.uuid4().hex[:12]
    v1, v2 = f"t{unique}.record.ingested.v1", f"t{unique}.record.ingested.v2"
    topics = {"TOPIC_RECORD_INGESTED_V1": v1, "TOPIC_RECORD_INGESTED_V2": v2,
              "KAFKA_DLQ_TOPIC_V1": f"{v1}.dlq", "KAFKA_DLQ_TOPIC_V2": f"{v2}.dlq"}
    ensure_topics(stack.kafka.brokers, topics.values(), partitions=3)
    settings = make_settings(stack_env, **topics, KAFKA_TOPICS=f"{v1},{v2}", KAFKA_CONSUMER_GROUP=f"g{unique}")
    dsn = stack_env["DATABASE_URL"]
    source = f"opview-{unique}"
    stalled_job = uuid.uuid4()
    async with running_app(settings) as client:
        async def scrape() -> Scrape:
            response = await client.get("/metrics")
            assert response.status_code == 200
            return Scrape.parse(response.text)

        async def owns_every_partition() -> bool:
            return len((await scrape()).series("exchange_consumer_lag_messages")) == 6

        await eventually(owns_every_partition, timeout=60)
        before = await scrape()

        def post(version: int, body: Any, key: str, headers: dict[str, str] | None = None) -> Any:
            return client.post(f"/v{version}/ingest", json=body,
                               headers={"Idempotency-Key": key, **(DEV if headers is None else headers)})

        answers = [(await post(1, _v1(source, n), f"{unique}-a{n}")).status_code for n in range(4)]
        answers += [(await post(2, _v2(source, n), f"{unique}-b{n}")).status_code for n in range(2)]
        answers.append((await post(1, _v1(source, 0), f"{unique}-a0")).status_code)  # replayed
        answers.append((await post(1, _v1(source, 99), f"{unique}-a0")).status_code)  # same key, other body
        answers.append((await post(1, {"source": source}, f"{unique}-bad")).status_code)  # no patient
        answers.append((await post(1, _v1(source, 5), f"{unique}-anon", headers={})).status_code)  # no token
        assert answers == [202] * 7 + [409, 400, 401]
        lost = await _lost_record_event(settings, v1, source)

        async def settled() -> bool:
            canonical = await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE source = $1", source)
            dead = await fetchval(dsn, "SELECT count(*) FROM dlq_events WHERE record_id = $1", uuid.UUID(lost))
            return canonical == 6 and dead == 1

        await eventually(settled, timeout=60)

        # A raw object ingest never saw (an orphan from a lost commit): only the replay emits it.
        store = make_object_store(settings.object_store)
        try:
            await store.put(f"{source}/{uuid7()}.json", json.dumps(_v1(source, 42)).encode())
        finally:
            await store.close()

        admin = bearer(settings, sub="ops-metrics", scopes="admin")
        started = await client.post("/admin/jobs/replay", json={"source": source}, headers=admin)
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]

        async def replayed() -> bool:
            job = (await client.get(f"/admin/jobs/{job_id}", headers=admin)).json()
            assert job["status"] != "failed", job
            return bool(job["status"] == "succeeded")

        await eventually(replayed, timeout=60)

        async def caught_up() -> bool:  # the replay's events normalized and every offset committed
            now = await scrape()
            lag = now.series("exchange_consumer_lag_messages")
            return (now.value("exchange_normalizer_records_total", outcome="duplicate") >= 6
                    and now.value("exchange_normalizer_records_total", outcome="inserted") == 7
                    and len(lag) == 6 and all(v == 0 for _, v in lag))

        await eventually(caught_up, timeout=60)
        # A job its process left behind: running, last moved two minutes ago.
        await fetch(dsn, "INSERT INTO job_runs (job_run_id, job_name, status, progress, updated_at) "
                         "VALUES ($1, 'replay', 'running', $2::jsonb, now() - interval '2 minutes')",
                    stalled_job, {"done": 7, "total": 20})
        try:
            after = await scrape()
            health = (await client.get("/health/detailed")).json()
        finally:
            await fetch(dsn, "DELETE FROM job_runs WHERE job_run_id = $1", stalled_job)
    return Traffic(before, after, {"v1": v1, "v2": v2}, source, job_id, health)


def _delta(traffic: Traffic, name: str, **labels: str) -> float:
    return traffic.after.value(name, **labels) - traffic.before.value(name, **labels)


async def test_each_ingest_answer_counts_once_by_version_and_outcome(traffic: Traffic) -> None:
    got = {(lbl["version"], lbl["outcome"]): v for lbl, v in traffic.after.series("exchange_ingest_requests_total")}
    assert {k: v for k, v in got.items() if v} == {
        ("1", "accepted"): 4, ("2", "accepted"): 2, ("1", "replayed"): 1, ("1", "conflict"): 1,
        ("1", "rejected"): 2,
    }


async def test_e2e_latency_observes_every_record_made_canonical_and_no_duplicate(traffic: Traffic) -> None:
    after = traffic.after
    assert after.value("exchange_e2e_latency_seconds_count", origin="ingest") == 6
    assert after.value("exchange_e2e_latency_seconds_bucket", origin="ingest", le="+Inf") == 6
    assert after.value("exchange_e2e_latency_seconds_bucket", origin="ingest", le="60.0") == 6  # seconds, not ms
    assert 0 < after.value("exchange_e2e_latency_seconds_sum", origin="ingest") < 6 * 60
    # The replay's events of those six found them canonical (duplicates have no latency); the one
    # for the object ingest never saw is counted apart, from its record id's time.
    assert after.value("exchange_e2e_latency_seconds_count", origin="replay") == 1
    assert 0 < after.value("exchange_e2e_latency_seconds_sum", origin="replay") < 5 * 60


async def test_normalizer_results_and_dead_letters_by_stage_and_error_type(traffic: Traffic) -> None:
    after = traffic.after
    assert after.value("exchange_normalizer_records_total", outcome="inserted") == 7
    assert after.value("exchange_normalizer_records_total", outcome="duplicate") >= 6
    assert after.value("exchange_normalizer_records_total", outcome="dlq") == 1
    assert [(lbl, v) for lbl, v in after.series("exchange_dlq_messages_total")] == [
        ({"stage": "fetch", "error_type": "RawObjectNotFound"}, 1.0)
    ]
    assert _delta(traffic, "exchange_dlq_open_entries", stage="fetch", error_type="RawObjectNotFound") == 1


async def test_consumer_lag_is_reported_per_owned_partition_and_reaches_zero(traffic: Traffic) -> None:
    lag = traffic.after.series("exchange_consumer_lag_messages")
    partitions = {(lbl["topic"], lbl["partition"]) for lbl, _ in lag}
    assert partitions == {(t, str(p)) for t in traffic.topics.values() for p in range(3)}
    assert all(v == 0 for _, v in lag)
    # /health/detailed tells the same (a console reads it there).
    consumer = traffic.health["dependencies"]["consumer"]
    assert (consumer["status"], consumer["lag_messages"], consumer["partitions"]) == ("up", 0, 6)


async def test_outbox_gauges_and_published_events_per_topic(traffic: Traffic) -> None:
    after = traffic.after
    # 4 v1 and 2 v2 records, each published once at ingest and once by the replay; the replay's
    # orphan once (v1).
    assert after.value("exchange_outbox_published_total", topic=traffic.topics["v1"]) == 9
    assert after.value("exchange_outbox_published_total", topic=traffic.topics["v2"]) == 4
    assert after.series("exchange_outbox_backlog_events")
    assert after.value("exchange_outbox_oldest_pending_age_seconds") >= 0


async def test_jobs_show_runs_by_status_and_the_progress_of_running_ones(traffic: Traffic) -> None:
    assert _delta(traffic, "exchange_job_runs", job_name="replay", status="succeeded") == 1
    assert _delta(traffic, "exchange_job_processed_items", job_name="replay") == 7
    assert _delta(traffic, "exchange_job_expected_items", job_name="replay") == 20
    assert traffic.after.value("exchange_job_progress_age_seconds", job_name="replay") >= 119


async def test_dependencies_are_up_and_every_task_runs_with_no_restart(traffic: Traffic) -> None:
    after = traffic.after
    up = {lbl["dependency"]: v for lbl, v in after.series("exchange_dependency_up")}
    assert up == {"database": 1, "object_store": 1, "kafka": 1}  # the tokenizer is in process
    tasks = {"normalizer", "outbox-publisher", "idempotency-janitor", "job-sweeper"}
    assert {lbl["task"]: v for lbl, v in after.series("exchange_task_restarts_total")} == dict.fromkeys(tasks, 0)
    assert {lbl["task"]: v for lbl, v in after.series("exchange_task_running")} == dict.fromkeys(tasks, 1)


async def test_a_dependency_down_is_zero_and_ingest_counts_its_503s(
    stack_env: dict[str, str], unique: str
) -> None:
    settings = make_settings(stack_env, S3_ENDPOINT="http://127.0.0.1:9")  # discard port: nothing listens
    async with running_app(settings, frozenset({Role.INGEST})) as client:
        answer = await client.post("/v1/ingest", json=_v1(f"down-{unique}", 1),
                                   headers={**DEV, "Idempotency-Key": f"{unique}-down"})
        assert answer.status_code == 503, answer.text
        scrape = Scrape.parse((await client.get("/metrics")).text)
    assert scrape.value("exchange_ingest_requests_total", version="1", outcome="unavailable") == 1
    assert scrape.value("exchange_ingest_requests_total", version="1", outcome="accepted") == 0
    assert {lbl["dependency"]: v for lbl, v in scrape.series("exchange_dependency_up")} == {
        "database": 1, "object_store": 0,
    }


# -- the dashboard and the rules name only what the app exports --------------------------------

_SELECTOR = re.compile(r"\b(exchange_[a-z0-9_]+|up)\b(?:\{([^}]*)\})?(?!\s*\()")
_MATCHER = re.compile(r'([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def _expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and every alert rule."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = [(f"panel {panel['title']!r}", target["expr"])
             for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        found += [(f"alert {rule['alert']}", rule["expr"]) for rule in group["rules"]]
    return found


def test_the_dashboard_covers_flow_backlog_dlq_dependencies_and_jobs() -> None:
    text = " ".join(expr for _, expr in _expressions())
    for metric in ("exchange_ingest_requests_total", "exchange_e2e_latency_seconds_bucket",
                   "exchange_normalizer_records_total", "exchange_outbox_backlog_events",
                   "exchange_consumer_lag_messages", "exchange_dlq_messages_total", "exchange_dlq_open_entries",
                   "exchange_dependency_up", "exchange_job_processed_items"):
        assert metric in text


async def test_every_expression_names_metrics_labels_and_values_the_live_app_exports(traffic: Traffic) -> None:
    exported = traffic.after.samples
    problems: list[str] = []
    for where, expr in _expressions():
        named = [(m.group(1), m.group(2) or "") for m in _SELECTOR.finditer(expr)]
        assert named, f"{where}: no metric found in {expr!r}"
        labels_of_named: set[str] = set(TARGET_LABELS)
        for name, matchers in named:
            if name == "up":  # written by Prometheus for each target, not by the app
                continue
            if name not in exported:
                problems.append(f"{where}: {name} is not exported (or has no sample)")
                continue
            labels = {k for lbl, _ in exported[name] for k in lbl} | TARGET_LABELS
            labels_of_named |= labels
            for label, op, value in _MATCHER.findall(matchers):
                if label not in labels:
                    problems.append(f"{where}: {name} has no label {label}")
                elif op == "=" and label not in TARGET_LABELS and value not in {
                    lbl.get(label) for lbl, _ in exported[name]
                }:
                    problems.append(f"{where}: {name} has no series with {label}={value!r}")
        grouped = {g.strip() for grouping in _GROUPING.findall(expr) for g in grouping.split(",")} - {""}
        problems += [f"{where}: groups by {label}, which none of its metrics has"
                     for label in sorted(grouped - labels_of_named)]
    assert problems == []
