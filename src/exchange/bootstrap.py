"""The composition root: the one place that knows every concrete class.

``build_runtime`` turns settings + roles into adapters, services and background
components. Nothing here runs at import time; connections open in ``Runtime.start``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from exchange.adapters.jwt import TokenVerifier
from exchange.adapters.kafka import AsyncConsumer, AsyncProducer, broker_ready
from exchange.adapters.objectstore import ObjectStore, make_object_store
from exchange.adapters.postgres import Database
from exchange.admin import AdminService, JobSweeper
from exchange.console import SessionCodec
from exchange.ingest import IdempotencyJanitor, IngestService
from exchange.jobs import Jobs
from exchange.normalize import Normalizer, OffsetBook, RecordProcessor, identifiers_from_raw
from exchange.ops.health import HealthProbe, probe_all
from exchange.ops.metrics import DEPENDENCIES, Metrics
from exchange.ops.tracing import configure_tracing
from exchange.outbox import OutboxPublisher, outbox_stats
from exchange.persons import KeyRotation, PersonLinker
from exchange.roles import Role
from exchange.runtime import BackgroundComponent, DependencyGate, RequestLoad, Supervisor, TaskStatus
from exchange.runtime.load import SUSTAINED_S
from exchange.settings import Settings, SettingsError
from exchange.tokenize import HttpTokenizer, InProcessTokenizer, Tokenizer

__all__ = ("Runtime", "admin_tools", "build_runtime")

_log = logging.getLogger("exchange.bootstrap")


@dataclass
class Runtime:
    """Everything one process runs, for the roles it hosts."""

    settings: Settings
    roles: frozenset[Role]
    metrics: Metrics
    token_verifier: TokenVerifier
    supervisor: Supervisor
    request_load: RequestLoad
    db: Database | None = None
    ingest_service: IngestService | None = None
    local_tokenizer: Tokenizer | None = None
    admin_service: AdminService | None = None
    console_sessions: SessionCodec | None = None
    health_probes: dict[str, HealthProbe] = field(default_factory=dict)
    metrics_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def start(self) -> None:
        if self.db is not None:
            await self.db.start()  # lazy: opens no connection, so a down database cannot block start-up
        self.supervisor.start()
        _log.info("runtime started", extra={"roles": sorted(self.roles)})

    async def stop(self, timeout: float) -> None:
        """Drain background work within ``timeout`` seconds, then close adapters."""
        await self.supervisor.stop(timeout)
        for close in reversed(self._closers):
            try:
                await close()
            except Exception as exc:  # noqa: BLE001 - closing must go on for the others
                _log.warning("close failed", extra={"error_type": type(exc).__name__})
        _log.info("runtime stopped")


def _on_task_change(metrics: Metrics) -> Callable[[TaskStatus], None]:
    def update(status: TaskStatus) -> None:
        # A waiting task is up (alive, probing); exchange_task_waiting_for_dependency says what it waits for.
        metrics.task_up.labels(status.name).set(1 if status.state in ("running", "waiting") else 0)
        if status.state == "restarting":
            metrics.task_restarts.labels(status.name).inc()

    return update


def _report_waits(task: str, gate: DependencyGate, supervisor: Supervisor, metrics: Metrics) -> None:
    """Health (the task's state ``waiting`` and ``waiting_for``) and metrics follow the task's gate."""
    shown: set[str] = set()
    for dependency in gate.dependencies:  # the series exist from the start, at zero
        metrics.task_waiting.labels(task, dependency).set(0)
        metrics.dependency_outages.labels(task, dependency)

    def changed(waiting_for: tuple[str, ...]) -> None:
        supervisor.set_waiting(task, waiting_for)
        for dependency in shown | set(waiting_for):
            metrics.task_waiting.labels(task, dependency).set(1 if dependency in waiting_for else 0)
        shown.update(waiting_for)

    def outage(dependency: str) -> None:
        metrics.dependency_outages.labels(task, dependency).inc()

    gate.subscribe(changed, outage)


def _scrape_hook(name: str, refresh: Callable[[], Awaitable[None]], *,
                 on_failure: Callable[[], None] | None = None) -> Callable[[], Awaitable[None]]:
    """``refresh`` run at each scrape; a failure (a dependency down) keeps the scrape answering."""

    async def hook() -> None:
        try:
            await refresh()
        except Exception as exc:  # noqa: BLE001 - the scrape goes on; exchange_dependency_up tells why
            _log.debug("metrics refresh failed", extra={"gauges": name, "error_type": type(exc).__name__})
            if on_failure is not None:
                on_failure()

    return hook


def build_runtime(settings: Settings, roles: frozenset[Role]) -> Runtime:
    metrics = Metrics()
    request_load = RequestLoad(busy_at=settings.pipeline.normalizer_yield_at, sustained_s=SUSTAINED_S)
    configure_tracing("exchange", settings.observability.otlp_endpoint)
    components: list[BackgroundComponent] = []
    gates: list[tuple[str, DependencyGate]] = []
    probes: dict[str, HealthProbe] = {}
    hooks: list[Callable[[], Awaitable[None]]] = []
    closers: list[Callable[[], Awaitable[None]]] = []

    needs_db = bool(roles & {Role.INGEST, Role.PUBLISHER, Role.NORMALIZER, Role.ADMIN, Role.QUERY})
    needs_store = bool(roles & {Role.INGEST, Role.NORMALIZER, Role.ADMIN})
    db = Database(settings.database) if needs_db else None
    store: ObjectStore | None = make_object_store(settings.object_store) if needs_store else None

    if db is not None:
        closers.append(db.close)

        async def db_probe() -> dict[str, Any] | None:
            await db.ping()
            return None

        probes["database"] = db_probe
    if store is not None:
        closers.append(store.close)

        async def store_probe() -> dict[str, Any] | None:
            await store.ping()
            return None

        probes["object_store"] = store_probe

    ingest_service = None
    if Role.INGEST in roles:
        assert db is not None
        assert store is not None
        ingest_service = IngestService(
            db, store,
            metrics=metrics,
            topic_v1=settings.kafka.topic_v1,
            topic_v2=settings.kafka.topic_v2,
            retention_hours=settings.ingest.idempotency_retention_hours,
            schema_hints=settings.ingest.schema_hints,
            batch_max=settings.ingest.batch_max,
            batches_in_flight=settings.ingest.batches_in_flight,
        )
        components.append(IdempotencyJanitor(db))

    if roles & {Role.PUBLISHER, Role.NORMALIZER}:
        brokers = settings.kafka.brokers

        async def kafka_probe() -> dict[str, Any] | None:
            if not await asyncio.to_thread(broker_ready, brokers, timeout=2.0):
                raise ConnectionError("no broker answered")
            return None

        probes["kafka"] = kafka_probe

    if Role.PUBLISHER in roles:
        assert db is not None
        components.append(
            OutboxPublisher(
                db,
                lambda: AsyncProducer(settings.kafka.brokers, extra={"message.timeout.ms": 10_000}),
                metrics,
                batch_size=settings.pipeline.outbox_batch_size,
                retention_hours=settings.pipeline.outbox_retention_hours,
                # Under a burst of requests it claims in wider steps: bigger batches, fewer round trips.
                request_load=request_load,
            )
        )

        async def outbox_probe() -> dict[str, Any] | None:
            return await outbox_stats(db)

        async def outbox_metrics() -> None:
            stats = await outbox_stats(db)
            metrics.set_outbox(stats["backlog"], stats["oldest_pending_age_s"])

        probes["outbox"] = outbox_probe
        hooks.append(_scrape_hook("outbox", outbox_metrics))

    local_tokenizer: Tokenizer | None = None
    if Role.TOKENIZER in roles:
        local_tokenizer = InProcessTokenizer(settings.tokenizer.hmac_key.reveal().encode(), settings.tokenizer.key_id,
                                             settings.linkage.keys())

    if Role.NORMALIZER in roles:
        assert db is not None
        assert store is not None
        tokenizer: Tokenizer
        if local_tokenizer is not None:
            tokenizer = local_tokenizer
        elif settings.tokenizer.url:
            http_tokenizer = HttpTokenizer(
                settings.tokenizer.url, settings.tokenizer.key_id, settings.auth, use_dev_token=settings.local
            )
            closers.append(http_tokenizer.close)
            tokenizer = http_tokenizer
        else:
            raise SettingsError("TOKENIZER_URL", "required when the normalizer runs without the tokenizer role")
        kafka = settings.kafka

        def consumer_factory(book: OffsetBook) -> AsyncConsumer:
            return AsyncConsumer(kafka.brokers, kafka.consumer_group, kafka.topics,
                                 on_revoke=book.revoke, on_assign=book.assign,
                                 group_instance_id=kafka.group_instance_id,
                                 unknown_topic_grace_s=kafka.unknown_topic_grace_s)

        normalizer = Normalizer(
            RecordProcessor(db, store, tokenizer, PersonLinker(db, on_refusal=metrics.linkage_refusals.inc)),
            db,
            consumer_factory,
            lambda: AsyncProducer(kafka.brokers),
            metrics,
            kafka,
            settings.pipeline,
            request_load=request_load,
        )
        components.append(normalizer)
        gates.append((normalizer.name, normalizer.gate))

        async def consumer_lag_metrics() -> None:
            metrics.set_consumer_lag(await normalizer.consumer_lag())

        async def consumer_probe() -> dict[str, Any] | None:
            lag = await normalizer.consumer_lag()
            return {"lag_messages": sum(lag.values()), "partitions": len(lag)}

        probes["consumer"] = consumer_probe

        # Unknown while Kafka does not answer: no lag series then (exchange_dependency_up says why).
        hooks.append(_scrape_hook("consumer_lag", consumer_lag_metrics,
                                  on_failure=lambda: metrics.set_consumer_lag({})))
        if local_tokenizer is None:

            async def tokenizer_probe() -> dict[str, Any] | None:
                await tokenizer.ping()
                return None

            probes["tokenizer"] = tokenizer_probe

    admin_service = None
    console_sessions = None
    if Role.ADMIN in roles:
        console_sessions = _console_sessions(settings)
        assert db is not None
        assert store is not None
        admin_service = _admin_service(settings, db, store)
        closers.append(admin_service.stop)
        components.append(JobSweeper(admin_service, interval_s=settings.pipeline.job_lease_s))
        admin = admin_service

        # The DLQ and the jobs are database facts: the admin role (which acts on them) reports them.
        async def dlq_and_job_metrics() -> None:
            metrics.set_dlq_open(await admin.dlq.open_counts())
            metrics.set_jobs(await admin.jobs.summary())

        hooks.append(_scrape_hook("dlq_and_jobs", dlq_and_job_metrics))

    dependency_probes = {name: probe for name, probe in probes.items() if name in DEPENDENCIES}

    async def dependency_metrics() -> None:
        results = await probe_all(dependency_probes, timeout=2.0)
        metrics.set_dependencies({name: r["status"] == "up" for name, r in results.items()})

    if dependency_probes:
        hooks.append(_scrape_hook("dependencies", dependency_metrics))

    supervisor = Supervisor(components, on_change=_on_task_change(metrics))
    for component in components:
        metrics.track_task(component.name)
    for task_name, gate in gates:
        _report_waits(task_name, gate, supervisor, metrics)
    return Runtime(
        settings=settings,
        roles=roles,
        metrics=metrics,
        token_verifier=TokenVerifier(settings.auth, allow_dev_token=settings.local),
        supervisor=supervisor,
        request_load=request_load,
        db=db,
        ingest_service=ingest_service,
        local_tokenizer=local_tokenizer,
        admin_service=admin_service,
        console_sessions=console_sessions,
        health_probes=probes,
        metrics_hooks=hooks,
        _closers=closers,
    )


def _console_sessions(settings: Settings) -> SessionCodec:
    # No default secret: without one configured each process draws its own, and its sessions
    # end when it does (docs/operations.md, Console).
    configured = settings.console.session_secret.reveal().encode()
    return SessionCodec(configured or secrets.token_bytes(32), settings.console.session_ttl_s)


def _admin_service(settings: Settings, db: Database, store: ObjectStore) -> AdminService:
    # The key rotation job tokenizes raw objects itself: the operator's process holds the keys.
    tokenizer = InProcessTokenizer(settings.tokenizer.hmac_key.reveal().encode(), settings.tokenizer.key_id,
                                   settings.linkage.keys())
    jobs = Jobs(db, lease_s=settings.pipeline.job_lease_s)  # this process's lease owner
    rotation = KeyRotation(db, store, tokenizer, PersonLinker(db), jobs, active_key_id=settings.linkage.key_id,
                           identifiers=identifiers_from_raw)
    return AdminService(db, store, topic_v1=settings.kafka.topic_v1, topic_v2=settings.kafka.topic_v2,
                        rotation=rotation, jobs=jobs)


@contextlib.asynccontextmanager
async def admin_tools(settings: Settings) -> AsyncIterator[AdminService]:
    """The admin service for one CLI command (replay, reconcile, dlq), closed afterwards."""
    db = Database(settings.database)
    store = make_object_store(settings.object_store)
    await db.start()
    try:
        yield _admin_service(settings, db, store)
    finally:
        await store.close()
        await db.close()
