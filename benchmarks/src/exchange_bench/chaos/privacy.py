"""The privacy sweep after a chaos run: every output the run produced, searched for the canaries
its records carried (``records.leaks``). Raw storage (the bucket, quarantine included) is the
only place they may be, and the sweep checks they are there, so a sweep of nothing cannot pass.

Searched: each process's log (every restart appended), every answer body the client got other
than a 202, every admin and query response read here, each process's ``/metrics`` and
``/health/detailed``, the run's Kafka topics with their DLQs (keys, values, headers), and every
row of every table of the run's database (outbox, canonical, the derived and linkage tables,
the ledger, ``dlq_events``, ``audit_log``, ``job_runs`` ...). Traces are not exported in this
deployment (no OTLP endpoint), so there are none to search.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncpg
from confluent_kafka import Consumer, TopicPartition

from exchange.adapters.objectstore import make_object_store
from exchange.settings import load_settings
from exchange_bench._http import Connection
from exchange_bench.chaos.records import canaries, leaks

__all__ = ("Sweep", "person_paths", "read_responses")


class Sweep:
    """Texts searched so far: where -> canary -> hits, and how many bytes each place held."""

    def __init__(self) -> None:
        self.hits: dict[str, dict[str, int]] = {}
        self.searched: dict[str, int] = {}

    def search(self, where: str, texts: Iterable[str]) -> None:
        size = 0
        found: dict[str, int] = {}
        for text in texts:
            size += len(text)
            for name, n in leaks(text).items():
                found[name] = found.get(name, 0) + n
        self.searched[where] = self.searched.get(where, 0) + size
        if found:
            self.hits[where] = {k: self.hits.get(where, {}).get(k, 0) + n for k, n in found.items()}

    def logs(self, paths: Iterable[Path]) -> None:
        for path in paths:
            self.search(f"log {path.name}", [path.read_text(errors="replace")])

    def database(self, dsn: str) -> None:
        for table, texts in asyncio.run(_tables(dsn)).items():
            self.search(f"table {table}", texts)

    def topics(self, brokers: str, topics: Iterable[str]) -> None:
        for topic in topics:
            self.search(f"topic {topic}", _topic_texts(brokers, topic))

    def raw_storage(self, env: dict[str, str], keys: list[str]) -> dict[str, Any]:
        """The canaries are where they belong: in the raw objects (a few read back)."""
        found = asyncio.run(_raw_hits(env, keys))
        return {"objects_read": len(keys), "objects_with_every_canary_class": found}

    def summary(self) -> dict[str, Any]:
        return {"places_searched": len(self.searched), "bytes_searched": sum(self.searched.values()),
                "hits": sum(sum(v.values()) for v in self.hits.values()), "hits_by_place": self.hits,
                "places": sorted(self.searched)}


async def _tables(dsn: str) -> dict[str, list[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        names = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        out: dict[str, list[str]] = {}
        for name in names:
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{name}" t')
            out[name] = [r["row"] for r in rows]
    finally:
        await conn.close()
    return out


def _topic_texts(brokers: str, topic: str) -> list[str]:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"chaos-sweep-{uuid.uuid4()}",
                         "enable.auto.commit": False, "log_level": 0})
    texts: list[str] = []
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return texts
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in meta.partitions}
        remaining = {p: hi for p, (lo, hi) in ends.items() if hi > lo}
        consumer.assign([TopicPartition(topic, p, ends[p][0]) for p in remaining])
        while remaining:
            msg = consumer.poll(5.0)
            if msg is None:
                break
            if msg.error() is not None:
                continue
            texts.append(f"{msg.key()!r} {msg.value()!r} {msg.headers()!r}")
            partition, offset = msg.partition() or 0, msg.offset() or 0
            if offset + 1 >= remaining.get(partition, 0):
                remaining.pop(partition, None)
    finally:
        consumer.close()
    return texts


async def _raw_hits(env: dict[str, str], keys: list[str]) -> int:
    store = make_object_store(load_settings(env).object_store)
    wanted = set(canaries())
    complete = 0
    try:
        for key in keys:
            found = set(leaks((await store.get(key)).decode(errors="replace")))
            complete += found >= wanted
    finally:
        await store.close()
    return complete


async def _read_all(port: int, token: str, paths: list[str]) -> list[str]:
    conn = Connection("127.0.0.1", port)
    texts: list[str] = []
    try:
        for path in paths:
            _, body = await conn.get(path, {"Authorization": f"Bearer {token}"})
            texts.append(body.decode("utf-8", "replace"))
    finally:
        await conn.close()
    return texts


def read_responses(port: int, token: str, paths: list[str]) -> list[str]:
    """The bodies of GETs on ``port`` (query and admin reads, metrics, health)."""
    return asyncio.run(_read_all(port, token, paths))


def person_paths(linkage_bodies: list[str]) -> list[str]:
    """``/persons/{id}/records`` of the persons the linkage answers named."""
    persons: list[str] = []
    for body in linkage_bodies:
        try:
            person = json.loads(body).get("person_id")
        except (ValueError, AttributeError):
            continue
        if isinstance(person, str) and person not in persons:
            persons.append(person)
    return [f"/persons/{p}/records" for p in persons]
