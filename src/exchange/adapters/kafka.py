"""The only module that imports confluent_kafka.

librdkafka calls block, so everything that may wait runs off the event loop, and
delivery reports are bridged to asyncio futures with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # type: ignore[attr-defined]

__all__ = (
    "AsyncConsumer",
    "AsyncProducer",
    "ConsumedMessage",
    "ConsumerFatal",
    "Delivered",
    "DeliveryFailed",
    "OutgoingMessage",
    "broker_ready",
    "delete_topics",
    "ensure_topics",
    "topic_names",
)

# librdkafka logs connection errors to stderr itself; route them nowhere (we log our own).
_QUIET: dict[str, Any] = {"log_level": 0}


def broker_ready(brokers: str, *, timeout: float) -> bool:
    """True when a broker answers a metadata request and reports itself in the cluster."""
    admin = AdminClient({"bootstrap.servers": brokers, "socket.timeout.ms": int(timeout * 1000), **_QUIET})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def ensure_topics(brokers: str, topics: Iterable[str], *, partitions: int, timeout: float = 30.0) -> list[str]:
    """Create missing topics (replication factor 1); returns the ones it created."""
    admin = AdminClient({"bootstrap.servers": brokers, **_QUIET})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [t for t in topics if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in wanted],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created: list[str] = []
    for topic, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(topic)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise
    return created


def topic_names(brokers: str, *, timeout: float = 30.0) -> list[str]:
    admin = AdminClient({"bootstrap.servers": brokers, **_QUIET})
    return sorted(admin.list_topics(timeout=timeout).topics)


def delete_topics(brokers: str, topics: Iterable[str], *, timeout: float = 30.0) -> None:
    """Delete topics (and their data), returning once the broker no longer lists them; one
    already gone is not an error."""
    wanted = list(topics)
    if not wanted:
        return
    admin = AdminClient({"bootstrap.servers": brokers, **_QUIET})
    futures = admin.delete_topics(wanted, operation_timeout=timeout, request_timeout=timeout)
    for future in futures.values():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue
            raise
    # The controller has accepted the deletion; the broker's metadata follows a moment later.
    deadline = time.monotonic() + timeout
    while set(wanted) & set(admin.list_topics(timeout=timeout).topics):
        if time.monotonic() > deadline:
            raise TimeoutError("deleted topics are still listed")
        time.sleep(0.05)


class DeliveryFailed(Exception):
    """The broker did not confirm a message; ``error_type`` is a stable, PII-free name."""

    def __init__(self, error_type: str, detail: str) -> None:
        super().__init__(f"{error_type}: {detail}")
        self.error_type = error_type


@dataclass(frozen=True, slots=True)
class Delivered:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    key: bytes
    value: bytes
    headers: Mapping[str, str] | None = None


class _Deliveries:
    """The delivery reports of one ``send_many``, collected on librdkafka's threads.

    The event loop is woken once, when the last report is in: a wake-up per message (a
    ``call_soon_threadsafe`` each) cost the publisher more than the messages themselves.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.results: list[Delivered | DeliveryFailed | None] = [None] * count
        self.done: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._remaining = count
        self._lock = threading.Lock()  # reports may be served by poll() and flush() at once

    def on_delivery(self, index: int, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.settle(index, DeliveryFailed(err.name(), err.str()))
        else:
            self.settle(index, Delivered(msg.topic(), msg.partition(), msg.offset()))

    def settle(self, index: int, outcome: Delivered | DeliveryFailed) -> None:
        self.results[index] = outcome
        with self._lock:
            self._remaining -= 1
            last = self._remaining == 0
        if last:
            with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown): no one waits
                self._loop.call_soon_threadsafe(_finish, self.done)


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AsyncProducer:
    """An idempotent (acks=all) producer whose sends resolve when the broker confirms.

    A thread of its own calls ``poll`` (which serves delivery reports) for the producer's
    lifetime, instead of a ``run_in_executor`` round-trip through the event loop per poll.
    """

    def __init__(self, brokers: str, *, extra: Mapping[str, Any] | None = None) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": brokers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 30_000,
            **_QUIET,
        }
        config.update(extra or {})
        self._producer = Producer(config)
        self._poller: threading.Thread | None = None
        self._closed = False

    async def start(self) -> None:
        if self._poller is None:
            self._poller = threading.Thread(target=self._poll_forever, name="kafka-producer-poll", daemon=True)
            self._poller.start()

    def _poll_forever(self) -> None:
        while not self._closed:
            self._producer.poll(0.1)

    async def send(
        self,
        topic: str,
        *,
        key: bytes,
        value: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> Delivered:
        (outcome,) = await self.send_many([OutgoingMessage(topic, key, value, headers)])
        if isinstance(outcome, DeliveryFailed):
            raise outcome
        return outcome

    async def send_many(self, messages: Sequence[OutgoingMessage]) -> list[Delivered | DeliveryFailed]:
        """Produce ``messages``; one outcome per message, in order, once the broker has answered for all."""
        if not messages:
            return []
        deliveries = _Deliveries(asyncio.get_running_loop(), len(messages))
        for index, message in enumerate(messages):
            while True:
                try:
                    self._producer.produce(
                        message.topic,
                        value=message.value,
                        key=message.key,
                        headers=list((message.headers or {}).items()),
                        on_delivery=functools.partial(deliveries.on_delivery, index),
                    )
                    break
                except BufferError:
                    # Local queue full: let deliveries drain, then try again.
                    await asyncio.sleep(0.01)
                except KafkaException as exc:
                    error = exc.args[0] if exc.args else None
                    name = error.name() if isinstance(error, KafkaError) else type(exc).__name__
                    deliveries.settle(index, DeliveryFailed(name, "produce rejected"))
                    break
        await deliveries.done
        return [outcome for outcome in deliveries.results if outcome is not None]

    async def topics(self, timeout: float = 5.0) -> set[str]:
        """Topics the cluster has now; raises ``DeliveryFailed`` when no broker answers."""
        loop = asyncio.get_running_loop()
        try:
            metadata = await loop.run_in_executor(None, lambda: self._producer.list_topics(timeout=timeout))
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            name = error.name() if isinstance(error, KafkaError) else type(exc).__name__
            raise DeliveryFailed(name, "no metadata") from None
        return set(metadata.topics)

    async def flush(self, timeout: float) -> int:
        """Wait for in-flight messages; returns how many are still undelivered."""
        loop = asyncio.get_running_loop()
        remaining: int = await loop.run_in_executor(None, self._producer.flush, timeout)
        return remaining

    async def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(Exception):
            await self.flush(timeout)
        self._closed = True
        if self._poller is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._poller.join)
            self._poller = None


@dataclass(frozen=True, slots=True)
class ConsumedMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]


class ConsumerFatal(Exception):
    """The consumer cannot go on: it must be closed and a new one made (the supervisor restarts
    the component). ``error_name`` is librdkafka's name of the error, PII-free."""

    def __init__(self, error_name: str, detail: str) -> None:
        super().__init__(f"{error_name}: {detail}")
        self.error_name = error_name


ErrorClass = Literal["fatal", "unknown_topic", "ignore"]

# Refusals that no retry changes: the credentials or the ACLs must be fixed first.
_DENIED = frozenset({
    KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._AUTHENTICATION,
})
_UNKNOWN_TOPIC = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})


def classify_error(error: KafkaError) -> ErrorClass:
    """What an error a consumed message carries means for the consumer.

    ``fatal``: librdkafka says so (``fatal()``, or the ``_FATAL`` event, e.g. this member fenced by
    another with its ``group.instance.id``) or access is denied. ``unknown_topic``: fatal only if
    the topic is still missing after a grace (it may be being created). ``ignore``: partition EOF
    and transient broker or network errors, which librdkafka retries itself.
    """
    code = error.code()
    if error.fatal() or code == KafkaError._FATAL or code in _DENIED:
        return "fatal"
    if code in _UNKNOWN_TOPIC:
        return "unknown_topic"
    return "ignore"


TopicPartitionKey = tuple[str, int]
RevokeHook = Callable[[list[TopicPartitionKey]], dict[TopicPartitionKey, int]]


class AsyncConsumer:
    """A consumer-group member with manual commits.

    Every librdkafka call runs on ONE dedicated thread (the client is not thread-safe
    for concurrent calls). Rebalance callbacks run on that thread inside ``consume``:
    ``on_revoke`` returns the offsets that are safe to commit for the revoked
    partitions, which are committed synchronously before the partitions go away.
    """

    def __init__(
        self,
        brokers: str,
        group_id: str,
        topics: Iterable[str],
        *,
        on_revoke: RevokeHook,
        on_assign: Callable[[list[TopicPartitionKey]], None] | None = None,
        group_instance_id: str | None = None,
        unknown_topic_grace_s: float = 60.0,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": brokers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            "fetch.wait.max.ms": 50,  # latency over fetch efficiency: the broker holds a fetch at most 50 ms to fill it
            # Prefetch at most ~1,700 events (librdkafka's default is 64 MiB): while the
            # normalizer holds back for requests (waves), the broker is not asked to stream the
            # whole burst to a queue no one reads yet. That measurably cut Kafka's CPU per
            # ingested record and left bulk normalizing as fast (docs/performance.md).
            "queued.max.messages.kbytes": 512,
            "max.poll.interval.ms": 300_000,
            # A rebalance moves only the partitions that change owner; the others are consumed
            # throughout (the rebalance callbacks get just the partitions added or taken away).
            "partition.assignment.strategy": "cooperative-sticky",
            **_QUIET,
        }
        if group_instance_id:
            # Static membership (KIP-345): a restarted member takes its partitions back at once
            # instead of the group waiting out the dead member's session and rebalancing.
            config["group.instance.id"] = group_instance_id
        config.update(extra or {})
        self._config = config
        self._topics = list(topics)
        self._on_revoke = on_revoke
        self._on_assign = on_assign
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")
        self._consumer: Consumer | None = None
        self._paused = False  # read and written on the consumer thread only
        self._paused_set: set[tuple[str, int]] = set()
        self._unknown_topic_grace = unknown_topic_grace_s
        self._missing_since: dict[str, float] = {}  # consumer thread only: topic -> first "unknown" report
        self._admin: AdminClient | None = None  # for the watermarks a lag report needs (made on first use)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        def create() -> None:
            self._consumer = Consumer(self._config)
            self._consumer.subscribe(self._topics, on_assign=self._assigned, on_revoke=self._revoked,
                                     on_lost=self._lost)

        await self._call(create)

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._on_assign is not None:
            self._on_assign([(p.topic, p.partition) for p in partitions])

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        offsets = self._on_revoke([(p.topic, p.partition) for p in partitions])
        if offsets:
            with contextlib.suppress(KafkaException):
                consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                asynchronous=False)

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost (not revoked): another member may already own them; commit nothing.
        self._on_revoke([(p.topic, p.partition) for p in partitions])

    async def pause(self) -> None:
        """Stop fetching from every partition we own (and any assigned later) until ``resume``.
        Keep calling ``poll_batch``: it keeps the membership alive and answers no records. On
        resume, fetching restarts after the last record handed out, so none is skipped."""

        def pause() -> None:
            self._paused = True
            self._pause_assignment()

        await self._call(pause)

    async def resume(self) -> None:
        def resume() -> None:
            assert self._consumer is not None
            self._paused = False
            owned = self._consumer.assignment()
            if owned:
                self._consumer.resume(owned)
            self._paused_set.clear()

        await self._call(resume)

    def _pause_assignment(self) -> None:
        """Pause what we own and have not paused yet (a rebalance may have assigned more)."""
        assert self._consumer is not None
        owned = self._consumer.assignment()
        fresh = [tp for tp in owned if (tp.topic, tp.partition) not in self._paused_set]
        if fresh:
            self._consumer.pause(fresh)
        self._paused_set = {(tp.topic, tp.partition) for tp in owned}

    async def poll_batch(self, max_messages: int, timeout: float) -> list[ConsumedMessage]:
        def consume() -> list[ConsumedMessage]:
            assert self._consumer is not None
            if self._paused:
                self._pause_assignment()
            self._check_missing_topics()
            out: list[ConsumedMessage] = []
            for msg in self._consumer.consume(num_messages=max_messages, timeout=timeout):
                error = msg.error()
                if error is not None:
                    self._on_error(error, msg.topic())
                    continue
                raw_headers: Any = msg.headers() or []
                headers = {str(k): (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
                           for k, v in (raw_headers.items() if isinstance(raw_headers, dict) else raw_headers)}
                out.append(ConsumedMessage(str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0),
                                           msg.key(), msg.value() or b"", headers))
            return out

        result: list[ConsumedMessage] = await self._call(consume)
        return result

    async def lag(self, timeout: float = 2.0) -> dict[TopicPartitionKey, int]:
        """Per partition this member owns: the broker's high watermark minus the group's committed
        offset (the low watermark where nothing is committed yet), i.e. the records not finished.

        Asks the broker instead of reading the watermarks of the last fetch: those stand still
        while consumption is paused, which is when the lag grows. Meant for a scrape, not per
        record. Only the assignment and the committed offsets (one request) are read on the
        consumer thread, where a poll waits behind them; the watermarks of every partition come
        from one admin request off that thread (a request per partition there stalled the
        normalizer for the whole scrape). Raises ``KafkaException`` when the broker does not
        answer within ``timeout``.
        """

        def committed() -> list[TopicPartition]:
            if self._consumer is None:
                return []
            owned = self._consumer.assignment()
            return list(self._consumer.committed(owned, timeout=timeout)) if owned else []

        positions: list[TopicPartition] = await self._call(committed)
        if not positions:
            return {}
        high = await self._watermarks(positions, OffsetSpec.latest(), timeout)  # type: ignore[no-untyped-call]
        unstarted = [tp for tp in positions if tp.offset < 0]
        low = (await self._watermarks(unstarted, OffsetSpec.earliest(), timeout)  # type: ignore[no-untyped-call]
               if unstarted else {})
        return {
            (tp.topic, tp.partition): max(0, high[(tp.topic, tp.partition)]
                                          - (tp.offset if tp.offset >= 0 else low[(tp.topic, tp.partition)]))
            for tp in positions
        }

    async def _watermarks(self, partitions: list[TopicPartition], spec: Any,
                          timeout: float) -> dict[TopicPartitionKey, int]:
        """``spec``'s offset (latest, earliest) of each partition, in one admin request."""
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self._config["bootstrap.servers"], **_QUIET})
        futures = self._admin.list_offsets({TopicPartition(tp.topic, tp.partition): spec for tp in partitions},
                                           request_timeout=timeout)
        answers = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures.values()))
        return {(tp.topic, tp.partition): int(info.offset) for tp, info in zip(futures, answers, strict=True)}

    def _on_error(self, error: KafkaError, topic: str | None) -> None:
        """On the consumer thread: raise ``ConsumerFatal`` for a fatal error; note an unknown topic."""
        kind = classify_error(error)
        if kind == "fatal":
            raise ConsumerFatal(error.name(), "the consumer cannot continue")
        if kind == "unknown_topic":
            self._missing_since.setdefault(topic or "", time.monotonic())

    def _check_missing_topics(self) -> None:
        """On the consumer thread: a topic reported unknown is fatal once the grace has passed and
        the cluster still does not list it (librdkafka reports it once, then waits silently)."""
        if not self._missing_since:
            return
        now = time.monotonic()
        due = [t for t, since in self._missing_since.items() if now - since >= self._unknown_topic_grace]
        if not due:
            return
        assert self._consumer is not None
        try:
            listed = set(self._consumer.list_topics(timeout=5.0).topics)
        except KafkaException:
            return  # no metadata now: ask again on a later poll
        missing = [t for t in due if t not in listed and (t or not set(self._topics) <= listed)]
        for topic in due:
            self._missing_since.pop(topic, None)
        if missing:
            raise ConsumerFatal(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART).name(),
                                f"a subscribed topic is still missing after {self._unknown_topic_grace:g}s")

    async def commit(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Commit ``next offset to read`` per partition (synchronously, on the consumer thread)."""
        if not offsets:
            return

        def commit() -> None:
            assert self._consumer is not None
            self._consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                  asynchronous=False)

        await self._call(commit)

    async def close(self) -> None:
        def close() -> None:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

        try:
            await self._call(close)
        finally:
            self._executor.shutdown(wait=False)
