"""Prometheus metrics: one registry per application instance (tests build many apps).

Names follow Prometheus' conventions: the unit last (``_seconds``, ``_messages``, ``_events``),
``_total`` on counters only, and label values from a small, fixed set (a topic, a partition, a
stage, an error type's class name, a job's kind) — never a record id, a source, a client or a
job id. Label children known in advance are created at zero, so ``rate()`` and ``increase()``
see a first event (a series born at 1 shows no increase).

Facts that live in PostgreSQL or Kafka (outbox backlog, open DLQ entries, jobs, consumer lag,
dependencies) are gauges refreshed when ``/metrics`` is scraped (``set_*`` below), never by a
query per record. docs/operations.md has the table of every metric and the alert rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = (
    "DEPENDENCIES",
    "E2E_ORIGINS",
    "INGEST_OUTCOMES",
    "NORMALIZER_OUTCOMES",
    "IngestOutcome",
    "JobSummary",
    "Metrics",
)

IngestOutcome = Literal["accepted", "replayed", "conflict", "rejected", "unavailable", "error"]
INGEST_OUTCOMES: tuple[IngestOutcome, ...] = ("accepted", "replayed", "conflict", "rejected", "unavailable", "error")
"""202 new, 202 replayed, 409, any other 4xx, 503 (a dependency), 500."""
NORMALIZER_OUTCOMES = ("inserted", "duplicate", "dlq")
E2E_ORIGINS = ("ingest", "replay")
"""``replay``: events a replay job emitted (their accepted time is the original ingest's)."""
DEPENDENCIES = ("database", "object_store", "kafka", "tokenizer")

# Accepted -> canonical: the benchmark's target is p95 <= 0.5 s at 100 records/s; the long
# buckets show an outage's backlog draining.
_E2E_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class JobSummary(Protocol):
    """One job kind's runs (``exchange.jobs.JobSummary``; no job ids)."""

    @property
    def job_name(self) -> str: ...
    @property
    def runs_by_status(self) -> Mapping[str, int]: ...
    @property
    def processed_items(self) -> int: ...
    @property
    def expected_items(self) -> int: ...
    @property
    def progress_age_s(self) -> float: ...


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.http_requests = Counter(
            "exchange_http_requests_total", "HTTP requests served.", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "exchange_http_request_duration_seconds", "HTTP request latency.", ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=r,
        )
        self.task_up = Gauge(
            "exchange_task_running", "1 when a background task is running, else 0.", ["task"], registry=r
        )
        self.task_restarts = Counter(
            "exchange_task_restarts_total",
            "Background task restarts after a crash (the last error's type is in /health/detailed).", ["task"],
            registry=r,
        )
        self.ingest_requests = Counter(
            "exchange_ingest_requests_total",
            "Ingest requests by API version and outcome: accepted (202), replayed (202, Idempotent-Replayed), "
            "conflict (409), rejected (other 4xx), unavailable (503), error (500).",
            ["version", "outcome"], registry=r,
        )
        self._ingest_children = {
            (version, outcome): self.ingest_requests.labels(str(version), outcome)
            for version in (1, 2) for outcome in INGEST_OUTCOMES
        }
        self.ingest_batch_size = Histogram(
            "exchange_ingest_batch_size_requests", "Ingest requests sharing one transaction (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r,
        )
        self.ingest_batch_phase = Histogram(
            "exchange_ingest_batch_phase_seconds",
            "Time an ingest batch spends in each phase: begin (a connection, BEGIN and the advisory "
            "locks), lookup, put (the S3 PUTs), write (the rows), commit.",
            ["phase"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=r,
        )
        self.outbox_published = Counter(
            "exchange_outbox_published_total", "Outbox events confirmed by Kafka.", ["topic"], registry=r
        )
        self.outbox_failures = Counter(
            "exchange_outbox_publish_failures_total", "Outbox publish failures.", ["error_type"], registry=r
        )
        self.outbox_backlog = Gauge(
            "exchange_outbox_backlog_events", "Unpublished outbox rows (read at scrape).", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "exchange_outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox row (read at scrape).",
            registry=r,
        )
        self.normalized = Counter(
            "exchange_normalizer_records_total", "Records finished by the normalizer: inserted, duplicate, dlq.",
            ["outcome"], registry=r,
        )
        for outcome in NORMALIZER_OUTCOMES:
            self.normalized.labels(outcome)
        self.e2e_latency = Histogram(
            "exchange_e2e_latency_seconds",
            "From ingest accepting a record (its event's occurred_at) to its canonical row committed, by origin "
            "(ingest, or a replay job's events). Across processes, so it includes their clocks' skew.",
            ["origin"], buckets=_E2E_BUCKETS, registry=r,
        )
        self.e2e_by_origin = {origin: self.e2e_latency.labels(origin) for origin in E2E_ORIGINS}
        self.dlq_messages = Counter(
            "exchange_dlq_messages_total", "Records dead-lettered by the normalizer, by stage and error type.",
            ["stage", "error_type"], registry=r,
        )
        self.dlq_open = Gauge(
            "exchange_dlq_open_entries",
            "DLQ entries still open (dlq_events), by stage and error type (read at scrape).",
            ["stage", "error_type"], registry=r,
        )
        self.consumer_lag = Gauge(
            "exchange_consumer_lag_messages",
            "Per partition this normalizer owns: the broker's high watermark minus the group's committed offset "
            "(records not finished yet, in flight included; read at scrape).",
            ["topic", "partition"], registry=r,
        )
        self.job_runs = Gauge(
            "exchange_job_runs", "Operator jobs active or ended in the last 24 hours, by kind and status "
            "(read at scrape).", ["job_name", "status"], registry=r,
        )
        self.job_processed = Gauge(
            "exchange_job_processed_items", "Items the running jobs of a kind have processed.", ["job_name"],
            registry=r,
        )
        self.job_expected = Gauge(
            "exchange_job_expected_items", "Items the running jobs of a kind expect in all, where known.",
            ["job_name"], registry=r,
        )
        self.job_progress_age = Gauge(
            "exchange_job_progress_age_seconds",
            "Seconds since the least recently moved running job of a kind last recorded progress.", ["job_name"],
            registry=r,
        )
        self.dependency_up = Gauge(
            "exchange_dependency_up", "1 when the dependency answered this process' probe at scrape, else 0.",
            ["dependency"], registry=r,
        )
        self.task_waiting = Gauge(
            "exchange_task_waiting_for_dependency",
            "1 while a background task holds its work until the dependency is back, else 0.",
            ["task", "dependency"], registry=r,
        )
        self.dependency_outages = Counter(
            "exchange_dependency_outages_total",
            "Outages of a dependency confirmed by a background task's probe (it then waits instead of retrying).",
            ["task", "dependency"], registry=r,
        )
        self.consumer_fatal = Counter(
            "exchange_kafka_consumer_fatal_errors_total",
            "Fatal Kafka consumer errors (fenced, access denied, topic missing past its grace): the task "
            "stopped its consumer and the supervisor restarts it.",
            ["task", "error"], registry=r,
        )
        self.query_statements = Histogram(
            "exchange_query_statements_per_request",
            "SQL statements one read request ran (its page and its batches): an N+1 shows here first.",
            ["api"], buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128), registry=r,
        )
        self.normalizer_retries = Counter(
            "exchange_normalizer_retries_total", "Transient failures retried.", ["stage", "error_type"], registry=r
        )
        self.linkage_refusals = Counter(
            "exchange_linkage_refusals_total",
            "Person-step writes refused because another normalizer linked one of their candidates after "
            "they read them, or ended by a deadlock with a locked write of the same record; the batch "
            "was planned again (ADR 0013, 0014).",
            registry=r,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one served request and its latency (the label children are looked up once)."""
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children[key] = (
                self.http_requests.labels(method, route, str(status)), self.http_latency.labels(method, route)
            )
        children[0].inc()
        children[1].observe(seconds)

    def ingest_outcome(self, version: int, outcome: IngestOutcome) -> None:
        self._ingest_children[(version, outcome)].inc()

    def track_task(self, task: str) -> None:
        """A supervised task's series, at zero until it restarts."""
        self.task_restarts.labels(task)

    # -- gauges refreshed at scrape ------------------------------------------------------
    def set_outbox(self, backlog: int, oldest_pending_age_s: float) -> None:
        self.outbox_backlog.set(backlog)
        self.outbox_oldest_age.set(oldest_pending_age_s)

    def set_consumer_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        """Replace the lag series (a partition this process no longer owns disappears)."""
        self.consumer_lag.clear()
        for (topic, partition), messages in lag.items():
            self.consumer_lag.labels(topic, str(partition)).set(messages)

    def set_dlq_open(self, counts: Mapping[tuple[str, str], int]) -> None:
        """``counts``: open entries by (stage, error_type); a pair with none left disappears."""
        self.dlq_open.clear()
        for (stage, error_type), n in counts.items():
            self.dlq_open.labels(stage, error_type).set(n)

    def set_jobs(self, summaries: Iterable[JobSummary]) -> None:
        for gauge in (self.job_runs, self.job_processed, self.job_expected, self.job_progress_age):
            gauge.clear()
        for job in summaries:
            for status, n in job.runs_by_status.items():
                self.job_runs.labels(job.job_name, status).set(n)
            self.job_processed.labels(job.job_name).set(job.processed_items)
            self.job_expected.labels(job.job_name).set(job.expected_items)
            self.job_progress_age.labels(job.job_name).set(job.progress_age_s)

    def set_dependencies(self, up: Mapping[str, bool]) -> None:
        for dependency, is_up in up.items():
            self.dependency_up.labels(dependency).set(1 if is_up else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
