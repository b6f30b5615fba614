"""Prometheus metrics: one registry per application instance (tests build many apps)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ("Metrics",)


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
            "exchange_task_restarts_total", "Background task restarts after a crash.", ["task", "error_type"],
            registry=r,
        )
        self.ingest_accepted = Counter(
            "exchange_ingest_accepted_total", "Records accepted (202), by API version.", ["version", "replayed"],
            registry=r,
        )
        self.ingest_batch_size = Histogram(
            "exchange_ingest_batch_size", "Ingest requests sharing one transaction (group commit).",
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
        self.outbox_backlog = Gauge("exchange_outbox_backlog", "Unpublished outbox rows.", registry=r)
        self.outbox_oldest_age = Gauge(
            "exchange_outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox row.", registry=r
        )
        self.normalized = Counter(
            "exchange_normalizer_records_total", "Records finished by the normalizer.", ["outcome"], registry=r
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
        self.normalizer_retries = Counter(
            "exchange_normalizer_retries_total", "Transient failures retried.", ["stage", "error_type"], registry=r
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
