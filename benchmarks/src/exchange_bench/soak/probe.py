"""What the soak samples every few seconds: the server process's RSS, descriptors and TCP
sockets (``/proc``), the run database's sessions, the outbox backlog, the consumer group's lag
(Kafka) and the task restarts the server counts (``/metrics``)."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import asyncpg
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

__all__ = ("DatabaseProbe", "GroupLag", "process_sample", "task_restarts")


def process_sample(pid: int) -> dict[str, float]:
    """RSS (MB), open descriptors and TCP sockets (any state) of process ``pid``."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    sockets: set[str] = set()
    fds = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed while we looked
            continue
        fds += 1
        if target.startswith("socket:["):
            sockets.add(target[8:-1])
    tcp = 0
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]:
            if line.split()[9] in sockets:
                tcp += 1
    return {"rss_mb": rss_kb / 1024, "fds": float(fds), "tcp_sockets": float(tcp)}


def task_restarts(port: int) -> float:
    """``exchange_task_restarts_total`` summed over tasks and error types."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "exchange_task_restarts_total")


class DatabaseProbe:
    """One connection to the run's database for every sample (a connection a sample would add a
    PostgreSQL backend a few seconds and show in the very count it measures)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @classmethod
    async def connect(cls, dsn: str) -> DatabaseProbe:
        return cls(await asyncpg.connect(dsn))

    async def sample(self) -> dict[str, float]:
        """Sessions on the run's database other than this one, and unpublished outbox rows."""
        row = await self._conn.fetchrow(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "        AND pid <> pg_backend_pid()) AS sessions, "
            "       (SELECT count(*) FROM outbox_events WHERE published_at IS NULL) AS backlog")
        assert row is not None
        return {"pg_connections": float(row["sessions"]), "outbox_backlog": float(row["backlog"])}

    async def canonical(self, source: str) -> int:
        return int(await self._conn.fetchval("SELECT count(*) FROM canonical_records WHERE source = $1", source))

    async def close(self) -> None:
        await self._conn.close()


class GroupLag:
    """The consumer group's lag on its topics: end offsets minus committed offsets, summed (a
    partition the group never committed counts from its first offset). It never subscribes, so
    it does not join the group it reads."""

    def __init__(self, brokers: str, group: str, topics: list[str], partitions: int) -> None:
        self._consumer = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False,
                                   "log_level": 0})
        self._partitions = [TopicPartition(t, p) for t in topics for p in range(partitions)]

    def sample(self) -> float:
        committed = self._consumer.committed(self._partitions, timeout=10)
        lag = 0
        for tp in committed:
            low, high = self._consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            lag += high - (tp.offset if tp.offset >= 0 else low)
        return float(lag)

    def close(self) -> None:
        self._consumer.close()
