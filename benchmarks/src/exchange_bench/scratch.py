"""A run's own database, bucket, topics and consumer group on the local stack, dropped after it.

Every benchmark or evaluation run starts from the same empty tables, as on a fresh machine: on
the shared dev database each run's records stayed and later runs measured less with the same
code (docs/performance.md), and each run's raw objects, kept in the stack's bucket, grew
SeaweedFS's data run after run. Leftovers of runs killed before their cleanup are dropped by the
next run, except those of a run going on now (its database is in use).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from jose import jwt

from exchange.adapters.kafka import delete_topics, ensure_topics, topic_names
from exchange.adapters.migrations import upgrade_to_head
from exchange.adapters.objectstore import drop_bucket_sync, ensure_bucket_sync
from exchange_stack import Stack

__all__ = ("BENCH_BUCKET_PREFIX", "BENCH_DATABASE_PREFIX", "JWT_SECRET", "ScratchRun", "bucket_name", "token")

JWT_SECRET = "bench-jwt-secret-0123456789abcdef0123456789"
BENCH_DATABASE_PREFIX = "exchange_bench_"
BENCH_BUCKET_PREFIX = "exchange-bench-"
_BENCH_TOPIC = re.compile(r"^bench(?P<run_id>[A-Za-z0-9]+)\.")  # bench<run_id>.<purpose>


def token(subject: str, scopes: str, *, ttl_s: int = 3600) -> str:
    """A JWT the run's servers accept (they run with ``JWT_SECRET``); ``scopes`` space-separated."""
    now = int(time.time())
    claims = {"iss": "exchange", "aud": "exchange-api", "sub": subject, "scope": scopes,
              "iat": now, "exp": now + ttl_s}
    return str(jwt.encode(claims, JWT_SECRET, algorithm="HS256"))


def bucket_name(run_id: str) -> str:
    return f"{BENCH_BUCKET_PREFIX}{run_id}"


@dataclass(frozen=True, slots=True)
class ScratchRun:
    """One run's resources. ``env`` is the stack's environment pointed at them: its database
    (or the stack's own without the CREATEDB privilege), bucket, v1/v2 and DLQ topics
    (``bench<run_id>.*``), consumer group and ``JWT_SECRET``."""

    stack: Stack
    run_id: str
    env: dict[str, str]
    own_database: bool

    @classmethod
    def open(cls, stack: Stack, report: Callable[[str], None] = print) -> ScratchRun:
        env = stack.env()
        run_id = uuid.uuid4().hex[:8]
        live = asyncio.run(_drop_bench_databases(env["DATABASE_URL"]))
        own_database = asyncio.run(_create_database(env["DATABASE_URL"], f"{BENCH_DATABASE_PREFIX}{run_id}"))
        if own_database is None:
            report("warning: no CREATEDB privilege; the run uses the stack's own database")
        else:
            env = {**env, "DATABASE_URL": own_database}
        upgrade_to_head(env["DATABASE_URL"])
        # Buckets and topics of runs killed before their cleanup go now -- not those whose
        # database is still in use (a run going on). In the shared-database fallback no run has
        # a database to tell it is alive: two runs at once on such a stack would take each
        # other's bucket (one run at a time there).
        live_runs = {name.removeprefix(BENCH_DATABASE_PREFIX) for name in live}
        _drop_stale_buckets(stack, env, live_runs=live_runs)
        # Each run makes topics, and a dev stack's Kafka had kept the partition directories of
        # every old run, every one loaded at its start.
        delete_topics(env["KAFKA_BROKERS"],
                      [t for t, run in _bench_topic_runs(env["KAFKA_BROKERS"]).items() if run not in live_runs])
        ensure_bucket_sync(env["S3_ENDPOINT"], bucket_name(run_id), env["AWS_ACCESS_KEY_ID"],
                           env["AWS_SECRET_ACCESS_KEY"])
        topics = {
            "TOPIC_RECORD_INGESTED_V1": f"bench{run_id}.v1", "TOPIC_RECORD_INGESTED_V2": f"bench{run_id}.v2",
            "KAFKA_DLQ_TOPIC_V1": f"bench{run_id}.v1.dlq", "KAFKA_DLQ_TOPIC_V2": f"bench{run_id}.v2.dlq",
        }
        ensure_topics(env["KAFKA_BROKERS"], topics.values(), partitions=6)
        env = {**env, **topics, "S3_BUCKET": bucket_name(run_id),
               "KAFKA_TOPICS": f"bench{run_id}.v1,bench{run_id}.v2", "KAFKA_CONSUMER_GROUP": f"bench{run_id}",
               "JWT_SECRET": JWT_SECRET, "OBJECT_STORE_CLIENT": os.environ.get("OBJECT_STORE_CLIENT", "obstore")}
        return cls(stack, run_id, env, own_database is not None)

    def close(self) -> None:
        """Drop the run's database (or, in the stack's, its outbox rows), bucket and topics."""
        env = self.env
        if self.own_database:
            asyncio.run(_drop_bench_databases(self.stack.env()["DATABASE_URL"],
                                              ours=f"{BENCH_DATABASE_PREFIX}{self.run_id}"))
        else:
            asyncio.run(_delete_outbox_rows(env["DATABASE_URL"], self.run_id))
        drop_bucket_sync(env["S3_ENDPOINT"], bucket_name(self.run_id), env["AWS_ACCESS_KEY_ID"],
                         env["AWS_SECRET_ACCESS_KEY"])
        delete_topics(env["KAFKA_BROKERS"],
                      [t for t, run in _bench_topic_runs(env["KAFKA_BROKERS"]).items() if run == self.run_id])

    def __enter__(self) -> ScratchRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


async def _delete_outbox_rows(dsn: str, run_id: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM outbox_events WHERE topic LIKE $1", f"bench{run_id}%")
    finally:
        await conn.close()


async def _create_database(dsn: str, name: str) -> str | None:
    """Create database ``name`` beside the one at ``dsn``; its URL, or None without the privilege."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.InsufficientPrivilegeError:
        return None
    finally:
        await conn.close()
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def _drop_bench_databases(dsn: str, *, ours: str | None = None) -> list[str]:
    """Drop the runs' databases: ``ours`` even with a session left behind (a server killed
    mid-run), and those of runs killed before their cleanup -- but not one in use, which is a
    run going on now (no FORCE: the drop is refused). Returns those kept.

    The administrative connection was seen closed in the middle of a DROP on a loaded machine
    (twice in a day, the cause not found): the drops are retried on a new connection."""
    for attempt in range(3):
        try:
            return await _drop_once(dsn, ours)
        except (asyncpg.PostgresConnectionError, OSError):
            if attempt == 2:
                raise
            await asyncio.sleep(2.0)
    raise AssertionError("unreachable")


async def _drop_once(dsn: str, ours: str | None) -> list[str]:
    conn = await asyncpg.connect(dsn)
    kept: list[str] = []
    try:
        names = await conn.fetch("SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
                                 BENCH_DATABASE_PREFIX)
        for (name,) in names:
            try:
                await conn.execute(f'DROP DATABASE "{name}"' + (" WITH (FORCE)" if name == ours else ""))
            except asyncpg.ObjectInUseError:
                kept.append(name)
    finally:
        await conn.close()
    return kept


def _drop_stale_buckets(stack: Stack, env: dict[str, str], *, live_runs: set[str]) -> None:
    """Drop the buckets of runs that are over (their database is gone)."""
    credentials = env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    for name in stack.s3.bucket_names():
        if name.startswith(BENCH_BUCKET_PREFIX) and name.removeprefix(BENCH_BUCKET_PREFIX) not in live_runs:
            drop_bucket_sync(env["S3_ENDPOINT"], name, *credentials)


def _bench_topic_runs(brokers: str) -> dict[str, str]:
    """The runs' topics on the broker, each with the run that made it."""
    return {topic: match.group("run_id") for topic in topic_names(brokers)
            if (match := _BENCH_TOPIC.match(topic)) is not None}
