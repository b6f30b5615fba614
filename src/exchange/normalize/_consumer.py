"""The normalizer role: a consumer-group member that processes records concurrently.

Ordering and redelivery: records of one partition are processed concurrently (up to
``concurrency`` at a time, across partitions), so canonical rows may be written out of
offset order; that is fine because each record is independent and its insert is
idempotent. The committed offset of a partition only advances to the lowest record
not yet finished (``OffsetBook``), so after a crash, a rebalance or a SIGTERM every
unfinished record is delivered again; finished ones may be too, and count as
duplicates.

Retries do not stall the partition: a record waiting out its backoff gives back its
processing slot, and the records behind it go on. Only the commit waits for it.

Outages are not the records' fault: a record that failed because the database, the object
store or the tokenizer was unavailable asks the ``DependencyGate`` whether that dependency
is down. If it is, the failure is not counted against the record's ``MAX_ATTEMPTS``; the
gate stays closed, consumption is paused and every record waits until a probe finds the
dependency back (health shows the task ``waiting`` for it). Only failures of the record
itself (or of a dependency that answers its probe) spend attempts and lead to the DLQ.

A fatal consumer error (``ConsumerFatal``: fenced by another member with our
``group.instance.id``, access denied, a topic missing past its grace) ends ``run`` with that
error after the usual drain, counted in ``exchange_kafka_consumer_fatal_errors_total``: the
supervisor shows the task ``restarting`` and starts it again with a new consumer, instead of a
consumer that no longer fetches while the task says ``running``.

A dead letter is finished only once it is durable: the DLQ topic confirmed the envelope
AND its ``dlq_events`` row committed. Until then the record is not finished, so its
offset is never committed past (after a crash it is delivered again).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from opentelemetry.trace import SpanKind

from exchange.adapters.kafka import AsyncConsumer, AsyncProducer, ConsumedMessage, ConsumerFatal, DeliveryFailed
from exchange.adapters.postgres import Database
from exchange.errors import DatabaseUnavailable
from exchange.events import DlqEnvelope, DlqError, RecordIngested, RecordIngestedV2, format_timestamp
from exchange.normalize._dlq import record_dlq_event
from exchange.normalize._ledger import AttemptRef, DeliveryInfo
from exchange.normalize._offsets import OffsetBook
from exchange.normalize._pipeline import RecordProcessor, StageFailure
from exchange.ops.metrics import Metrics
from exchange.ops.tracing import context_from_headers, tracer
from exchange.runtime import RequestLoad, sleep_unless_stopped
from exchange.runtime.backoff import backoff_delay
from exchange.runtime.gate import DependencyGate
from exchange.settings import KafkaSettings, PipelineSettings

__all__ = ("Normalizer",)

_log = logging.getLogger("exchange.normalizer")
_encoder = msgspec.json.Encoder()


_RETRY_CAP_S = 30.0  # a record's retry backoff
_DLQ_RETRY_BASE_S, _DLQ_RETRY_CAP_S = 0.5, 10.0  # the DLQ publish and its row


class Normalizer:
    name = "normalizer"

    def __init__(
        self,
        processor: RecordProcessor,
        db: Database,
        consumer_factory: Callable[[OffsetBook], AsyncConsumer],
        producer_factory: Callable[[], AsyncProducer],
        metrics: Metrics,
        kafka: KafkaSettings,
        pipeline: PipelineSettings,
        *,
        drain_timeout_s: float = 4.0,
        commit_interval_s: float = 0.2,
        request_load: RequestLoad | None = None,
    ) -> None:
        self._processor = processor
        self.gate = DependencyGate(processor.probes())
        """Closed while a dependency is down; the composition root reports it to health and metrics."""
        self._db = db
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self._metrics = metrics
        self._kafka = kafka
        self._max_attempts = pipeline.max_attempts
        self._backoff_base = pipeline.backoff_base_ms / 1000
        self._concurrency = pipeline.normalizer_concurrency
        # Records waiting out a backoff hold no slot, but they count here: the poll
        # loop pauses when this many are unfinished, so an outage cannot fill memory.
        self._max_in_flight = max(100, pipeline.normalizer_concurrency * 16)
        self._drain_timeout = drain_timeout_s
        self._commit_interval = commit_interval_s
        # Requests served by this process come first (runtime/load.py).
        self._load = request_load or RequestLoad(busy_at=0)

    async def run(self, stop: asyncio.Event) -> None:
        book = OffsetBook()
        consumer = self._consumer_factory(book)
        producer = self._producer_factory()
        await producer.start()
        await consumer.start()
        slots = asyncio.Semaphore(self._concurrency)
        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        next_commit = loop.time() + self._commit_interval
        paused = False
        try:
            while not stop.is_set():
                if paused == self.gate.is_open():
                    # Paused while a dependency is down, but still polled: a member that stops
                    # polling for max.poll.interval.ms is put out of the group.
                    paused = not paused
                    await (consumer.pause() if paused else consumer.resume())
                room = self._max_in_flight - book.in_flight()
                if room <= 0 and not paused:
                    await asyncio.sleep(0.05)
                else:
                    for msg in await consumer.poll_batch(max(1, min(500, room)), timeout=0.1):
                        if not book.started((msg.topic, msg.partition), msg.offset):
                            continue  # partition revoked since the fetch: its new owner reads it
                        task = asyncio.create_task(self._handle(msg, slots, book, producer, stop))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                if loop.time() >= next_commit:
                    next_commit = loop.time() + self._commit_interval
                    await self._commit(consumer, book)
        except ConsumerFatal as fatal:
            self._metrics.consumer_fatal.labels(self.name, fatal.error_name).inc()
            _log.error("kafka consumer failed fatally; restarting the normalizer",
                       extra={"error_type": fatal.error_name})
            raise
        finally:
            # Drain: finish what we can in time, abandon the rest without committing past it.
            if tasks:
                _done, pending = await asyncio.wait(set(tasks), timeout=self._drain_timeout)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=1.0)
            with contextlib.suppress(Exception):
                await self._commit(consumer, book)
            await self.gate.close()
            await consumer.close()
            await producer.close(timeout=2.0)

    async def _commit(self, consumer: AsyncConsumer, book: OffsetBook) -> None:
        offsets = book.committable()
        if offsets:
            await consumer.commit(offsets)
            book.mark_committed(offsets)

    async def _handle(
        self,
        msg: ConsumedMessage,
        slots: asyncio.Semaphore,
        book: OffsetBook,
        producer: AsyncProducer,
        stop: asyncio.Event,
    ) -> None:
        # The first attempt's turn comes before its span and its decoding. A record is polled
        # as soon as it arrives (up to the in-flight bound), and while requests come first
        # (waves) it may wait seconds: work done before the wait is done for every record
        # polled during a burst, far more than are normalized then, and it is taken from the
        # requests on the same event loop (measured, docs/performance.md). The span now times
        # the processing, not the queueing before it (the trace still shows the gap after the
        # publish).
        if not await self.gate.wait_open(stop):
            return  # stopping: not finished, so never committed past
        held = await self._admit(slots)
        try:
            with tracer.start_as_current_span(
                "normalize record", kind=SpanKind.CONSUMER, context=context_from_headers(msg.headers),
                record_exception=False,
            ) as span:
                span.set_attribute("messaging.destination.name", msg.topic)
                span.set_attribute("messaging.kafka.partition", msg.partition)
                span.set_attribute("messaging.kafka.offset", msg.offset)
                await self._handle_in_span(msg, slots, book, producer, stop, held)
        finally:
            await held.aclose()  # a no-op once the first attempt has given its turn back

    async def _admit(self, slots: asyncio.Semaphore) -> contextlib.AsyncExitStack:
        """Wait for a slot and background work's turn; the returned stack holds both until closed."""
        held = contextlib.AsyncExitStack()
        await held.enter_async_context(slots)
        try:
            await held.enter_async_context(self._load.background_slot())
        except BaseException:
            await held.aclose()
            raise
        return held

    async def _handle_in_span(
        self,
        msg: ConsumedMessage,
        slots: asyncio.Semaphore,
        book: OffsetBook,
        producer: AsyncProducer,
        stop: asyncio.Event,
        first_turn: contextlib.AsyncExitStack,
    ) -> None:
        tp = (msg.topic, msg.partition)
        try:
            event = self._processor.decode(msg.value)
        except StageFailure as undecodable:
            await first_turn.aclose()  # the dead letter is published outside the slot, as below
            if await self._dead_letter(msg, None, undecodable, 1, None, producer, stop):
                book.finished(tp, msg.offset)
            return
        info = DeliveryInfo(
            record_id=event.record_id, correlation_id=event.correlation_id, event_version=_version(event),
            event_id=event.event_id, topic=msg.topic, partition=msg.partition, offset=msg.offset,
        )
        attempt = 0  # failures charged to the record (MAX_ATTEMPTS); an outage's are not
        turn: contextlib.AsyncExitStack | None = first_turn
        while True:
            ref: AttemptRef | None = None
            failure: StageFailure | None = None
            if turn is None:  # a retry waits for the gate, then for a turn of its own
                if not await self.gate.wait_open(stop):
                    return  # abandoned: not finished, so never committed past
                turn = await self._admit(slots)
            started = time.monotonic()
            async with turn:
                try:
                    ref = await self._processor.start(info)
                    processed = await self._processor.process(event, ref)
                except StageFailure as stage_failure:
                    failure = stage_failure
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - an unclassified error: retried like a transient one
                    failure = StageFailure("write", type(exc).__name__, "unexpected error", transient=True)
            turn = None
            if failure is None:
                self._metrics.normalized.labels(processed.result).inc()
                book.finished(tp, msg.offset)
                return
            if failure.dependency is not None and await self.gate.outage(failure.dependency, since=started):
                await self._record_failure(ref, failure, final=False, next_retry_at=None)
                self._metrics.normalizer_retries.labels(failure.stage, failure.error_type).inc()
                continue  # not charged: the next turn waits for the gate to open
            attempt += 1
            final = not failure.transient or attempt >= self._max_attempts
            delay = 0.0 if final else backoff_delay(attempt, base_s=self._backoff_base, cap_s=_RETRY_CAP_S)
            next_retry = None if final else dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)
            await self._record_failure(ref, failure, final=final, next_retry_at=next_retry)
            if final:
                if await self._dead_letter(msg, event, failure, attempt, ref, producer, stop):
                    book.finished(tp, msg.offset)
                return  # abandoned on stop: stays uncommitted and is redelivered
            self._metrics.normalizer_retries.labels(failure.stage, failure.error_type).inc()
            _log.info(
                "normalizer retry scheduled",
                extra={"record_id": event.record_id, "stage": failure.stage, "error_type": failure.error_type,
                       "attempt": attempt, "delay_s": round(delay, 3), "correlation_id": event.correlation_id},
            )
            await sleep_unless_stopped(stop, delay)
            if stop.is_set():
                return  # abandoned: not finished, so never committed past

    async def _record_failure(
        self, ref: AttemptRef | None, failure: StageFailure, *, final: bool, next_retry_at: dt.datetime | None
    ) -> None:
        """The attempt's failure in the ledger, when its start was recorded (best effort: the
        ledger is a history; a record's fate is its offset, its canonical row or its DLQ row)."""
        if ref is None:
            return
        with contextlib.suppress(DatabaseUnavailable):
            await self._processor.ledger.failed(
                ref, error_type=failure.error_type, message=failure.message, stage=failure.stage,
                transient=failure.transient, next_retry_at=next_retry_at, final=final,
            )

    async def _dead_letter(
        self,
        msg: ConsumedMessage,
        event: RecordIngested | None,
        failure: StageFailure,
        attempts: int,
        ref: AttemptRef | None,
        producer: AsyncProducer,
        stop: asyncio.Event,
    ) -> bool:
        """Publish the envelope to the version's DLQ and write its ``dlq_events`` row; True once
        both are durable (False: abandoned on stop, the record stays unfinished)."""
        if event is not None:
            original: dict[str, Any] = msgspec.to_builtins(event)
        else:
            original = {"undecodable": True, "topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
                        "size_bytes": len(msg.value)}
        failed_at = format_timestamp(dt.datetime.now(dt.UTC))
        envelope = DlqEnvelope(
            original_event=original,
            error=DlqError(type=failure.error_type, message=failure.message, stage=failure.stage),
            attempts=attempts,
            failed_at=failed_at,
        )
        is_v2 = isinstance(event, RecordIngestedV2) or (event is None and msg.topic == self._kafka.topic_v2)
        dlq_topic = self._kafka.dlq_v2 if is_v2 else self._kafka.dlq_v1
        record_id = event.record_id if event is not None else _uuid_or_none(msg.key)
        headers = {"correlation_id": event.correlation_id} if event is not None else {}
        publish_failures = 0
        while True:
            try:
                await producer.send(dlq_topic, key=(record_id or "").encode(), value=_encoder.encode(envelope),
                                    headers=headers)
                break
            except DeliveryFailed as exc:
                publish_failures += 1
                _log.warning("dlq publish failed", extra={"error_type": exc.error_type, "record_id": record_id})
                await sleep_unless_stopped(
                    stop, backoff_delay(publish_failures, base_s=_DLQ_RETRY_BASE_S, cap_s=_DLQ_RETRY_CAP_S)
                )
                if stop.is_set():
                    return False
        self._metrics.normalized.labels("dlq").inc()
        _log.warning(
            "record sent to dlq",
            extra={"record_id": record_id, "stage": failure.stage, "error_type": failure.error_type,
                   "attempt": attempts, "topic": dlq_topic},
        )
        if record_id is None:
            return True  # undecodable, no record id: the DLQ topic alone holds it
        row_failures = 0
        while True:
            started = time.monotonic()
            try:
                await record_dlq_event(
                    self._db, ref, record_id=record_id, event_id=event.event_id if event else None,
                    event_version=_version(event) if event else ("2" if is_v2 else "1"), dlq_topic=dlq_topic,
                    msg=msg, envelope=envelope,
                )
            except DatabaseUnavailable:
                # Not finished without its row: the tooling would never see this record.
                row_failures += 1
                _log.warning("dlq row write failed", extra={"record_id": record_id,
                                                            "error_type": "DatabaseUnavailable"})
                if not await self.gate.outage("database", since=started):
                    await sleep_unless_stopped(
                        stop, backoff_delay(row_failures, base_s=_DLQ_RETRY_BASE_S, cap_s=_DLQ_RETRY_CAP_S)
                    )
                if not await self.gate.wait_open(stop):
                    return False
            else:
                return True


def _version(event: RecordIngested) -> str:
    return "2" if isinstance(event, RecordIngestedV2) else "1"


def _uuid_or_none(key: bytes | None) -> str | None:
    if not key:
        return None
    try:
        return str(uuid.UUID(key.decode("ascii")))
    except (ValueError, UnicodeDecodeError):
        return None
