"""``exchange bench``: one run, every number side by side, on the local stack.

Load comes from separate processes (``loadgen``, ``floor``) so the server's numbers are
its own. Results go to ``benchmarks/results/latest.json`` and a markdown table to stdout.
Each benchmark uses its own topics and sources, so runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from exchange.adapters.kafka import AsyncProducer, ensure_topics
from exchange.adapters.objectstore import make_object_store
from exchange.adapters.postgres import unnest_columns
from exchange.events import RawObject, encode_event, make_event, uuid7
from exchange.settings import load_settings
from exchange_bench.cpu import CpuMeter, CpuSample, cpu_breakdown, joined, uptime_s
from exchange_bench.machine import machine
from exchange_bench.normalizers import NormalizerPhases
from exchange_bench.people import patient_v1
from exchange_bench.query import query_phase
from exchange_bench.scratch import ScratchRun, bucket_name, token
from exchange_bench.server import Server, stack_pids
from exchange_stack import Stack

__all__ = ("BenchConfig", "run_bench")


@dataclass(frozen=True, slots=True)
class BenchConfig:
    stack_root: Path
    concurrency: int = 32
    duration_s: float = 20.0
    e2e_rate: float = 100.0
    e2e_duration_s: float = 20.0
    drain_rows: int = 50_000
    normalizer_records: int = 10_000
    scaling_records: int = 10_000
    """Records of each scale-out phase (1, 2, 3 processes) and of the kill of one of three."""
    warmup_s: float = 3.0
    rounds: int = 3
    """Ingest, split ingest and floor alternate this many times, ``duration_s`` shared among them."""
    query_rows: int = 1_000_000
    """Canonical rows the query phase generates in SQL before it measures pages."""
    query_duration_s: float = 20.0
    output: Path = Path("benchmarks/results/latest.json")
    """Relative paths are taken from the working folder (`make bench` runs in the repository)."""

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError("rounds must be at least 1")


Window = tuple[CpuSample, CpuSample]
"""Every component's CPU at the start and at the end of a measured window."""


@dataclass(slots=True)
class _Side:
    """One side of a ratio (ingest, split ingest, floor) over its rounds: counted together."""

    accepted: int = 0
    """Every 202 (warm-up included): what the normalizer has to catch up with."""
    requests: int = 0
    elapsed_s: float = 0.0
    last_rate: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    windows: list[Window] = field(default_factory=list)

    def add(self, result: dict[str, Any], window: Window) -> None:
        """A load-generator round: its 202s count."""
        self.accepted += result["statuses"].get("202", 0) + result["warmup_statuses"].get("202", 0)
        self.latencies.extend(result["latencies_s"])
        self.statuses.update(result["statuses"])
        self.add_bare(result["statuses"].get("202", 0), result["elapsed_s"], window)

    def add_bare(self, requests: int, elapsed_s: float, window: Window) -> None:
        self.requests += requests
        self.elapsed_s += elapsed_s
        self.last_rate = requests / elapsed_s
        self.windows.append(window)

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed_s

    def cpu(self) -> dict[str, Any]:
        return cpu_breakdown(*joined(self.windows), self.rate)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _measured(cmd: list[str], components: dict[str, int | None], timeout: float,
              env: dict[str, str] | None = None) -> Window:
    """Run a load process (``loadgen`` or ``floor``); sample every component's CPU when it
    prints ``measuring`` and again at ``measured``: its counted window."""
    marks: dict[str, CpuSample] = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as proc:
        meter = CpuMeter({**components, "load": proc.pid})
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() in ("measuring", "measured"):
                marks[line.strip()] = meter.sample()
        code = proc.wait(timeout=timeout)
    if code != 0:
        raise subprocess.CalledProcessError(code, cmd)
    return marks["measuring"], marks["measured"]


def _loadgen(port: int, source: str, out: Path, *, mode: str, concurrency: int, duration: float,
             rate: float = 0.0, warmup: float = 0.0) -> dict[str, Any]:
    """One load-generator run; its result file."""
    subprocess.run(_loadgen_cmd(port, source, out, mode, concurrency, duration, rate, warmup), check=True,
                   timeout=warmup + duration + 300, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _measured_loadgen(port: int, source: str, out: Path, *, concurrency: int, duration: float, warmup: float,
                      components: dict[str, int | None]) -> tuple[dict[str, Any], Window]:
    """A closed-loop load-generator run, and every component's CPU over its counted window."""
    window = _measured(_loadgen_cmd(port, source, out, "closed", concurrency, duration, 0.0, warmup), components,
                       timeout=warmup + duration + 300)
    result: dict[str, Any] = json.loads(out.read_text())
    return result, window


def _loadgen_cmd(port: int, source: str, out: Path, mode: str, concurrency: int, duration: float, rate: float,
                 warmup: float) -> list[str]:
    return [sys.executable, "-m", "exchange_bench.loadgen", "--port", str(port), "--token",
            token("bench", "ingest:write"), "--source", source, "--mode", mode, "--concurrency", str(concurrency),
            "--duration", str(duration), "--rate", str(rate), "--warmup", str(warmup), "--out", str(out)]


def _bare_load(kind: str, cfg: BenchConfig, stack: Stack, run_id: str, scratch: Path, dsn: str,
               duration: float) -> tuple[int, float, Window]:
    """Run ``exchange_bench.floor`` or ``exchange_bench.core`` for ``duration`` counted seconds:
    ingest work driven by a script, no server. Returns the operations counted, the window's
    length and every component's CPU over it; its rows go to a topic of their own and are
    deleted after (no publisher runs; they are not for publishing)."""
    out = scratch / f"{kind}.json"
    topic = f"bench{run_id}.{kind}"
    window = _measured(
        [sys.executable, "-m", f"exchange_bench.{kind}", "--env-file", str(stack.env_file), "--source",
         f"bench-{kind}-{run_id}", "--topic", topic, "--concurrency", str(cfg.concurrency),
         "--duration", str(duration), "--warmup", str(cfg.warmup_s), "--out", str(out)],
        stack_pids(stack), timeout=cfg.warmup_s + duration + 300,
        # The run's database and bucket, not the stack file's.
        env={**os.environ, "DATABASE_URL": dsn, "S3_BUCKET": bucket_name(run_id)},
    )
    result = json.loads(out.read_text())
    asyncio.run(_cleanup_scratch(dsn, topic))
    return int(result["requests"]), float(result["elapsed_s"]), window


def _ingest_batch_samples(port: int) -> dict[str, float]:
    """The server's ingest batch histograms, as sums and counts (``size_sum``, ``put_count``...)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:  # loopback
        text = response.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            kind = sample.name.rsplit("_", 1)[-1]
            if kind not in ("sum", "count"):
                continue
            if sample.name == f"exchange_ingest_batch_size_requests_{kind}":
                samples[f"size_{kind}"] = sample.value
            elif sample.name == f"exchange_ingest_batch_phase_seconds_{kind}":
                samples[f"{sample.labels['phase']}_{kind}"] = sample.value
    return samples


def _e2e(port: int, cfg: BenchConfig, dsn: str, source: str, scratch: Path) -> dict[str, float]:
    """202 -> canonical row at ``cfg.e2e_rate`` requests/s (open loop): the percentiles."""
    e2e = _loadgen(port, source, scratch / "e2e.json", mode="open", concurrency=64, duration=cfg.e2e_duration_s,
                   rate=cfg.e2e_rate)
    accepted = dict(e2e["accepted"])
    asyncio.run(_wait(dsn, _canonical_at_least(source, len(accepted)), timeout=300, interval=0.5))
    lags = asyncio.run(_e2e_lags(dsn, source, accepted))
    return {"e2e_p50_ms": _pct(lags, 50) * 1000, "e2e_p95_ms": _pct(lags, 95) * 1000,
            "e2e_p99_ms": _pct(lags, 99) * 1000, "e2e_records": len(lags)}


async def _wait(dsn: str, check: Callable[[asyncpg.Connection], Awaitable[bool]], timeout: float,
                interval: float = 0.05) -> float:
    """Seconds until ``check(conn)`` is true, polled on ONE connection: a new connection per
    poll (a PostgreSQL backend started each time) took a measurable share of the machine's CPU
    from the server under measurement (docs/performance.md)."""
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if await check(conn):
                return time.perf_counter() - started
            await asyncio.sleep(interval)
        raise TimeoutError("benchmark condition not reached")
    finally:
        await conn.close()


def _canonical_at_least(source: str, expected: int) -> Callable[[asyncpg.Connection], Awaitable[bool]]:
    async def check(conn: asyncpg.Connection) -> bool:
        return await _canonical_count(conn, source) >= expected
    return check


def _drained(topic: str) -> Callable[[asyncpg.Connection], Awaitable[bool]]:
    async def check(conn: asyncpg.Connection) -> bool:
        return not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM outbox_events WHERE published_at IS NULL AND topic = $1)", topic)
    return check


class _RatioRounds:
    """Ingest with all roles, ingest with the HTTP roles alone (split deployment) and the
    floor, alternating: the machine's speed drifts by the minute here (steal, neighbours), and
    the ratios compare sides measured in the same minutes. Every other round runs the three in
    reverse order, so a drift within a round favours no side."""

    def __init__(self, cfg: BenchConfig, stack: Stack, env: dict[str, str], dsn: str, run_id: str,
                 scratch: Path, report: Callable[[str], None]) -> None:
        self._cfg, self._stack, self._env, self._dsn, self._run_id = cfg, stack, env, dsn, run_id
        self._scratch, self._report = scratch, report
        self._window_s = cfg.duration_s / cfg.rounds
        self._ingest_source = f"bench-ingest-{run_id}"
        # The split phase's events go to a topic of their own, which no later phase consumes.
        self._split_topic = f"bench{run_id}.split"
        ensure_topics(env["KAFKA_BROKERS"], [self._split_topic], partitions=6)
        self.ingest, self.split, self.floor = _Side(), _Side(), _Side()
        self.rss: dict[str, float] = {}
        """Peak RSS of each side's servers, MB."""
        self._backlogs: list[int] = []
        self._catchups: list[float] = []
        self._e2e: dict[str, float] = {}
        self._batches: Counter[str] = Counter()
        self._pipeline: list[float] = []

    def run(self) -> dict[str, Any]:
        rounds = []
        for n in range(1, self._cfg.rounds + 1):
            phases = [self._all_roles, self._split, self._floor]
            for phase in phases if n % 2 else reversed(phases):
                asyncio.run(_vacuum(self._dsn, *BENCH_TABLES))
                phase(n)
            rounds.append({"ingest_rps": self.ingest.last_rate, "ingest_split_rps": self.split.last_rate,
                           "floor_rps": self.floor.last_rate,
                           "ingest_ratio": self.ingest.last_rate / self.floor.last_rate})
        return {
            "rounds": rounds,
            "ingest_rps": self.ingest.rate,
            "ingest_p50_ms": _pct(self.ingest.latencies, 50) * 1000,
            "ingest_p99_ms": _pct(self.ingest.latencies, 99) * 1000,
            "ingest_statuses": dict(self.ingest.statuses),
            "ingest_backlog_at_end": max(self._backlogs),
            "ingest_catchup_s": max(self._catchups),
            "ingest_split_rps": self.split.rate,
            "ingest_split_p99_ms": _pct(self.split.latencies, 99) * 1000,
            "floor_rps": self.floor.rate,
            "ingest_ratio": self.ingest.rate / self.floor.rate,
            "ingest_split_ratio": self.split.rate / self.floor.rate,
            "ingest_batches": self._batch_summary(),
            "pipeline_rps": sum(self._pipeline) / len(self._pipeline),
            "pipeline_rps_by_round": self._pipeline,
            **self._e2e,
        }

    def _batch_summary(self) -> dict[str, Any]:
        """The all-roles rounds' ingest batches (warm-up included): their mean size, and the mean
        ms a batch spent in each phase (``exchange_ingest_batch_phase_seconds``)."""
        b = self._batches
        # The phases as the server names them, in its order (the metric's label values).
        phases = [key.removesuffix("_count") for key in b if key.endswith("_count") and key != "size_count"]
        return {
            "count": int(b["size_count"]),
            "size_mean": b["size_sum"] / b["size_count"] if b["size_count"] else 0.0,
            "phase_ms_mean": {phase: 1000 * b[f"{phase}_sum"] / b[f"{phase}_count"]
                              for phase in phases if b[f"{phase}_count"]},
        }

    def cpu(self) -> dict[str, Any]:
        return {"ingest": self.ingest.cpu(), "ingest_split": self.split.cpu(), "floor": self.floor.cpu()}

    def _all_roles(self, n: int) -> None:
        cfg = self._cfg
        self._report(f"round {n}/{cfg.rounds}: ingest, all roles: {cfg.concurrency} connections "
                     f"for {self._window_s:.1f}s ...")
        with Server(self._env, "all", self._scratch) as server:
            round_began = time.time()
            self.ingest.add(*_measured_loadgen(
                server.port, self._ingest_source, self._scratch / "ingest.json", concurrency=cfg.concurrency,
                duration=self._window_s, warmup=cfg.warmup_s, components=server.with_stack(self._stack)))
            self._batches.update(_ingest_batch_samples(server.port))  # a fresh server: this round's
            # While requests poured in, the normalizer trickled (requests first, runtime/load.py):
            # the backlog left, and how long the pipeline took to clear it before the next phase.
            self._backlogs.append(self.ingest.accepted - asyncio.run(_count_once(self._dsn, self._ingest_source)))
            self._catchups.append(asyncio.run(_wait(
                self._dsn, _canonical_at_least(self._ingest_source, self.ingest.accepted), timeout=600,
                interval=0.1)))
            # The pipeline, not just the requests: the round's records from the first accepted to
            # the last canonical, catch-up included.
            self._pipeline.append(asyncio.run(_pipeline_rate(self._dsn, self._ingest_source, round_began)))
            if n == cfg.rounds:
                # End to end (202 -> canonical row) at a fixed offered rate, on an idle pipeline.
                self._report(f"e2e: {cfg.e2e_rate:.0f}/s for {cfg.e2e_duration_s:.0f}s ...")
                self._e2e = _e2e(server.port, cfg, self._dsn, f"bench-e2e-{self._run_id}", self._scratch)
        self.rss["all_roles"] = max(self.rss.get("all_roles", 0.0), server.rss_peak_mb)

    def _split(self, n: int) -> None:
        cfg = self._cfg
        self._report(f"round {n}/{cfg.rounds}: ingest, ingest and publisher roles only ...")
        env = {**self._env, "TOPIC_RECORD_INGESTED_V1": self._split_topic}
        with Server(env, "ingest,publisher", self._scratch) as server:
            self.split.add(*_measured_loadgen(
                server.port, f"bench-alone-{self._run_id}", self._scratch / "alone.json",
                concurrency=cfg.concurrency, duration=self._window_s, warmup=cfg.warmup_s,
                components=server.with_stack(self._stack)))
            # Its publisher finishes its outbox here: left over, the rows would be published by
            # the next server, inside its measured window, and lower its rate (docs/performance.md).
            asyncio.run(_wait(self._dsn, _drained(self._split_topic), timeout=600, interval=0.1))
        self.rss["split"] = max(self.rss.get("split", 0.0), server.rss_peak_mb)

    def _floor(self, n: int) -> None:
        self._report(f"round {n}/{self._cfg.rounds}: floor, the ingest work without the service ...")
        self.floor.add_bare(*_bare_load("floor", self._cfg, self._stack, self._run_id, self._scratch, self._dsn,
                                        self._window_s))


class _IngestScaling:
    """Ingest at ``cfg.concurrency`` connections to one port served by one process and by two
    (``exchange serve --reuse-port``, ingest and publisher roles each: the kernel spreads the
    connections over the processes), alternating over the rounds as ``_RatioRounds`` does. The
    events go to a topic of their own, which no phase consumes."""

    ROLES = "ingest,publisher"

    def __init__(self, cfg: BenchConfig, stack: Stack, env: dict[str, str], dsn: str, run_id: str,
                 scratch: Path, report: Callable[[str], None]) -> None:
        self._cfg, self._stack, self._dsn, self._run_id = cfg, stack, dsn, run_id
        self._scratch, self._report = scratch, report
        self._topic = f"bench{run_id}.iscale"
        ensure_topics(env["KAFKA_BROKERS"], [self._topic], partitions=6)
        self._env = {**env, "TOPIC_RECORD_INGESTED_V1": self._topic}
        self.sides = {1: _Side(), 2: _Side()}

    def run(self) -> dict[str, float]:
        """Requests/s with 1 and 2 processes, each over all of its rounds."""
        for n in range(1, self._cfg.rounds + 1):
            for processes in (1, 2) if n % 2 else (2, 1):
                asyncio.run(_vacuum(self._dsn, *BENCH_TABLES))
                self._round(n, processes)
        return {str(processes): side.rate for processes, side in self.sides.items()}

    def _round(self, n: int, processes: int) -> None:
        cfg = self._cfg
        self._report(f"ingest scale-out {n}/{cfg.rounds}: {processes} process(es) on one port, "
                     f"{cfg.concurrency} connections ...")
        with contextlib.ExitStack() as running:
            first = running.enter_context(Server(self._env, self.ROLES, self._scratch, args=["--reuse-port"]))
            servers = [first, *(running.enter_context(Server(self._env, self.ROLES, self._scratch, port=first.port,
                                                             args=["--reuse-port"], tag=f"-{i}"))
                                for i in range(1, processes))]
            components = {**stack_pids(self._stack),
                          **{f"server{i}": s.proc.pid for i, s in enumerate(servers) if s.proc is not None}}
            self.sides[processes].add(*_measured_loadgen(
                first.port, f"bench-iscale-{self._run_id}", self._scratch / "iscale.json",
                concurrency=cfg.concurrency, duration=cfg.duration_s / cfg.rounds, warmup=cfg.warmup_s,
                components=components))
            # The publishers finish the outbox before the next round measures (as in the split phase).
            asyncio.run(_wait(self._dsn, _drained(self._topic), timeout=600, interval=0.1))


def run_bench(cfg: BenchConfig, report: Callable[[str], None] = print, *, stack: Stack | None = None) -> dict[str, Any]:
    """Every benchmark, one after the other, on ``stack`` (default: the developer stack, started)."""
    if stack is None:
        stack = Stack(cfg.stack_root)
        stack.up()
    # A database, bucket, topics and consumer group of the run's own, dropped after it.
    run = ScratchRun.open(stack, report)
    run_id, env = run.run_id, run.env
    settings = load_settings(env)
    dsn = settings.database.dsn
    results: dict[str, Any] = {
        "run_id": run_id,
        "database": "own" if run.own_database else "shared",
        "object_store_client": env["OBJECT_STORE_CLIENT"],
        "config": {k: str(v) for k, v in asdict(cfg).items()},
    }
    rss: dict[str, float] = {}  # peak RSS by phase, MB
    cpu: dict[str, Any] = {}
    scratch = Path(tempfile.mkdtemp(prefix="exchange-bench-"))

    async def count(sql: str, *args: Any) -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval(sql, *args))
        finally:
            await conn.close()

    # Pending rows of an earlier, interrupted run would be published ahead of ours.
    asyncio.run(_stale_cleanup(dsn))
    # Other pending rows (a dev stack's own) would be published by every phase's publisher
    # too, and charged to the benchmark: say so, in the report and in the JSON.
    results["outbox_pending_at_start"] = asyncio.run(
        count("SELECT count(*) FROM outbox_events WHERE published_at IS NULL"))
    if results["outbox_pending_at_start"]:
        report(f"warning: {results['outbox_pending_at_start']:,} unpublished outbox rows of other topics; "
               "the publisher will send them during the run and skew its numbers")
    # In the shared database (no CREATEDB) its size is part of the result: see above.
    results["database_mb_at_start"] = round(asyncio.run(
        count("SELECT pg_database_size(current_database())")) / 2**20)
    try:
        asyncio.run(_vacuum(dsn, *BENCH_TABLES))
        # 1-3. Ingest with all roles, ingest with the HTTP roles alone (split deployment) and the
        # floor, in alternating rounds (and the end-to-end latency, on the last all-roles server).
        sides = _RatioRounds(cfg, stack, env, dsn, run_id, scratch, report)
        # How long the stack's servers had been up, for the reader of the numbers. Runs on a
        # just-started stack measured low, but so did some on a stack up for a while, and an
        # uncounted minute of load first did not help (docs/performance.md): no warm-up is run,
        # the uptime is recorded.
        results["stack_uptime_s"] = _stack_uptime_s(stack)
        results.update(sides.run())
        cpu.update(sides.cpu())
        rss.update(sides.rss)
        asyncio.run(_vacuum(dsn, *BENCH_TABLES))
        results.update(_lone_clients(cfg, stack, env, run_id, scratch, report))

        # 1b. Ingest scaled out: one port served by 1 and by 2 processes (SO_REUSEPORT).
        ingest_scaling = _IngestScaling(cfg, stack, env, dsn, run_id, scratch, report).run()
        results["ingest_scaling"] = ingest_scaling
        results["ingest_scaling_2_over_1"] = ingest_scaling["2"] / ingest_scaling["1"]

        asyncio.run(_vacuum(dsn, *BENCH_TABLES))
        # 4. The service's own ingest work (IngestService, batched) without the HTTP side.
        report("core: the service's ingest work without HTTP ...")
        core = _Side()
        core.add_bare(*_bare_load("core", cfg, stack, run_id, scratch, dsn, cfg.duration_s))
        results["core_rps"] = core.rate
        results["core_ratio"] = core.rate / results["floor_rps"]
        cpu["core"] = core.cpu()

        asyncio.run(_vacuum(dsn, *BENCH_TABLES))
        # 5. Publisher drain of a pre-built backlog.
        report(f"publisher: draining {cfg.drain_rows} outbox rows ...")
        # A topic no later phase consumes: these rows are not events (the normalizer phase
        # once read them from the v2 topic and dead-lettered them while it was measured).
        drain_topic = f"bench{run_id}.drain"
        ensure_topics(env["KAFKA_BROKERS"], [drain_topic], partitions=6)
        asyncio.run(_build_backlog(dsn, drain_topic, cfg.drain_rows, run_id))
        with Server(env, "publisher", scratch) as server:
            elapsed = asyncio.run(_wait(dsn, _drained(drain_topic), timeout=600, interval=0.05))
        rss["publisher"] = server.rss_peak_mb
        results["publisher_drain_eps"] = cfg.drain_rows / elapsed
        # The drain left 50,000 dead row versions: vacuum them now, or autovacuum does it
        # during the next phase and the normalizer's number carries this phase's cleanup.
        asyncio.run(_vacuum(dsn, *BENCH_TABLES))

        # 6. Normalizer throughput over a pre-published backlog.
        report(f"normalizer: {cfg.normalizer_records} pre-published records ...")
        norm_source = f"bench-norm-{run_id}"
        norm_topic = env["TOPIC_RECORD_INGESTED_V1"]
        asyncio.run(_prepublish(settings, norm_source, norm_topic, cfg.normalizer_records))
        with Server(env, "normalizer,tokenizer", scratch) as server:
            meter = CpuMeter(server.with_stack(stack))
            # CPU from the first canonical row to the last: the consumer-group join is not throughput.
            joined = asyncio.run(_wait(dsn, _canonical_at_least(norm_source, 1), timeout=300, interval=0.02))
            before = meter.sample()
            elapsed = joined + asyncio.run(_wait(dsn, _canonical_at_least(norm_source, cfg.normalizer_records),
                                                 timeout=900, interval=0.1))
            after = meter.sample()
        rss["normalizer"] = server.rss_peak_mb
        # Steady state: first to last canonical row (the consumer-group join is not throughput).
        results["normalizer_rps"] = cfg.normalizer_records / asyncio.run(_normalized_span(dsn, norm_source))
        results["normalizer_wall_rps"] = cfg.normalizer_records / elapsed
        cpu["normalizer"] = cpu_breakdown(before, after, (cfg.normalizer_records - 1) / (after.at - before.at))
        results["cpu"] = cpu

        # 6b-e. The normalizer against its floor, split from its tokenizer, scaled out, and one of
        # three killed mid-backlog (each on a topic and group of its own).
        phases = NormalizerPhases(stack, env, dsn, run_id, scratch, report, _prepublish)
        asyncio.run(_vacuum(dsn, *BENCH_TABLES))
        floor = phases.floor(cfg.normalizer_records, concurrency=settings.pipeline.normalizer_concurrency)
        results["normalizer_floor_rps"] = floor["normalizer_floor_rps"]
        results["normalizer_ratio"] = results["normalizer_rps"] / floor["normalizer_floor_rps"]
        asyncio.run(_vacuum(dsn, *BENCH_TABLES))
        bare = phases.floor(cfg.normalizer_records, concurrency=settings.pipeline.normalizer_concurrency, bare=True)
        results["normalizer_floor_bare_rps"] = bare["normalizer_floor_rps"]
        asyncio.run(_vacuum(dsn, *BENCH_TABLES))
        split = phases.run("nsplit", cfg.normalizer_records, split=True)
        results["normalizer_split_rps"] = split["rps"]
        cpu["normalizer_split"] = split["cpu"]
        inproc = cpu["normalizer"]["ms_per_record"]["server"]
        results["normalizer_split_cpu_ratio"] = split["normalizer_cpu_ms_per_record"] / max(inproc, 1e-6)
        scaling, results["normalizer_scaling_runs"] = phases.scaling(
            cfg.scaling_records, between=lambda: asyncio.run(_vacuum(dsn, *BENCH_TABLES)))
        results["normalizer_scaling"] = scaling
        results["normalizer_scaling_2_over_1"] = scaling["2"] / scaling["1"]
        asyncio.run(_vacuum(dsn, *BENCH_TABLES))
        results["normalizer_kill_one_of_three"] = phases.kill_one_of_three(cfg.scaling_records)

        # 7. Replay of the same raw objects (through the outbox): as an operator runs it (objects
        # unchanged since ingest are built from the manifest), and reading every object.
        for flags, name in (((), "replay"), (("--read-raw",), "replay_read")):
            asyncio.run(_vacuum(dsn, *BENCH_TABLES))
            report(f"{name}: re-emitting the normalizer's raw objects {' '.join(flags)}...")
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "exchange.cli", "--stack-root", str(cfg.stack_root), "replay", "--source",
                 norm_source, *flags],
                env={**os.environ, **env}, capture_output=True, text=True, check=True, timeout=900,
            )
            wall = time.perf_counter() - started
            replayed = json.loads(out.stdout)
            job_seconds = asyncio.run(_job_seconds(dsn, replayed["job_id"]))
            results[f"{name}_rps"] = cfg.normalizer_records / job_seconds
            results[f"{name}_wall_s"] = wall
            results[f"{name}_objects_read"] = replayed["read"]
        # 8. Reads: one page of 100 records through REST and GraphQL over generated rows.
        results.update(query_phase(env, dsn, scratch, rows=cfg.query_rows, duration_s=cfg.query_duration_s,
                                   report=report))
        results["rss_mb_peak"] = max(rss.values())
        results["rss_mb_by_phase"] = rss
        results["machine"] = machine()
        results["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # Every record of the run was valid: a dead letter means the benchmark measured errors.
        results["dead_lettered"] = asyncio.run(
            count("SELECT count(*) FROM dlq_events WHERE source_topic LIKE $1", f"bench{run_id}%"))

    finally:
        if not run.own_database:
            asyncio.run(_cleanup(dsn))
        run.close()
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    report(markdown(results))
    return results


async def _canonical_count(conn: asyncpg.Connection, source: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM canonical_records WHERE source = $1", source))


# The tables the benchmark writes. Their dead rows (published outbox rows, the updated
# ledger, an earlier run's cleanup) are vacuumed before each measured phase: otherwise
# autovacuum picks its own moment, inside some phase's window, and charges it there (seen,
# run after run, as PostgreSQL's CPU per record nearly doubling: docs/performance.md).
BENCH_TABLES = ("outbox_events", "idempotency_keys", "raw_object_manifest", "canonical_records",
                "derived_patient_record_index", "processing_stage_state", "processing_attempts",
                "record_linkage", "linkage_tokens", "record_persons")


async def _vacuum(dsn: str, *tables: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")  # fixed table names from this module
    finally:
        await conn.close()


async def _count_once(dsn: str, source: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await _canonical_count(conn, source)
    finally:
        await conn.close()


async def _normalized_span(dsn: str, source: str) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT extract(epoch FROM max(normalized_at) - min(normalized_at))::float8 FROM canonical_records "
            "WHERE source = $1", source)
        return max(float(value), 1e-3)
    finally:
        await conn.close()


async def _pipeline_rate(dsn: str, source: str, since: float) -> float:
    """Records of ``source`` accepted since ``since`` (epoch s) over the time from the first of
    them accepted to the last made canonical."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, extract(epoch FROM max(normalized_at) - min(ingested_at))::float8 AS s "
            "FROM canonical_records WHERE source = $1 AND ingested_at >= to_timestamp($2)", source, since)
    finally:
        await conn.close()
    assert row is not None
    return float(row["n"]) / max(float(row["s"] or 0.0), 1e-3)


def _lone_clients(cfg: BenchConfig, stack: Stack, env: dict[str, str], run_id: str, scratch: Path,
                  report: Callable[[str], None]) -> dict[str, Any]:
    """Ingest at 1 and 8 connections (a partner sending one record at a time), all roles."""
    out: dict[str, Any] = {}
    window = cfg.duration_s / cfg.rounds
    for connections in (1, 8):
        report(f"ingest at {connections} connection(s), all roles, {window:.1f}s ...")
        with Server(env, "all", scratch) as server:
            result = _loadgen(server.port, f"bench-c{connections}-{run_id}", scratch / f"c{connections}.json",
                              mode="closed", concurrency=connections, duration=window, warmup=cfg.warmup_s)
        out[f"ingest_c{connections}_rps"] = result["statuses"].get("202", 0) / result["elapsed_s"]
        out[f"ingest_c{connections}_p50_ms"] = _pct(result["latencies_s"], 50) * 1000
        out[f"ingest_c{connections}_p99_ms"] = _pct(result["latencies_s"], 99) * 1000
    return out


async def _e2e_lags(dsn: str, source: str, accepted: dict[str, float]) -> list[float]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT record_id::text AS id, extract(epoch FROM normalized_at)::float8 AS t "
            "FROM canonical_records WHERE source = $1", source)
    finally:
        await conn.close()
    return [max(0.0, r["t"] - accepted[r["id"]]) for r in rows if r["id"] in accepted]


async def _build_backlog(dsn: str, topic: str, rows: int, run_id: str) -> None:
    event = {"event_version": "2", "event_type": "record.ingested", "source": f"bench-drain-{run_id}"}
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO outbox_events (topic, key, payload, headers) "
            "SELECT $1, gen_random_uuid()::text, $2::jsonb || jsonb_build_object('n', g), "
            "'{\"correlation_id\": \"bench\"}'::jsonb FROM generate_series(1, $3) AS g",
            topic, json.dumps(event), rows,
        )
    finally:
        await conn.close()


# The manifest rows ingest would have written for the backlog's v1 objects (replay reads them).
_MANIFEST = """
INSERT INTO raw_object_manifest
    (record_id, source, bucket, object_key, sha256, size_bytes, event_version, state, etag)
SELECT record_id, $1, $2, object_key, sha256, size_bytes, '1', 'enqueued', etag
FROM unnest($3::uuid[], $4::text[], $5::text[], $6::bigint[], $7::text[])
    AS t(record_id, object_key, sha256, size_bytes, etag)
"""


@dataclass(frozen=True, slots=True)
class _Stored:
    """One backlog object's manifest row: ``_MANIFEST``'s arrays, in its order."""

    record_id: str
    object_key: str
    sha256: str
    size_bytes: int
    etag: str | None


async def _prepublish(settings: Any, source: str, topic: str, n: int) -> None:
    """A backlog as ingest leaves it: each record's raw object, manifest row and event."""
    store = make_object_store(settings.object_store)
    producer = AsyncProducer(settings.kafka.brokers)
    await producer.start()
    sem = asyncio.Semaphore(64)
    rows: list[_Stored] = []

    async def one(i: int) -> None:
        record_id = str(uuid7())
        raw = json.dumps({"source": source, "record_type": "claim",
                          "patient": patient_v1(i, source),
                          "payload": {"i": i}}).encode()
        key = f"{source}/{record_id}.json"
        sha256 = hashlib.sha256(raw).hexdigest()
        async with sem:
            etag = await store.put(key, raw)
            rows.append(_Stored(record_id, key, sha256, len(raw), etag))
            event = make_event("1", event_id=str(uuid.uuid4()), occurred_at="2026-01-01T00:00:00.000000Z",
                               correlation_id=f"bench-{i:08d}", source=source, record_id=record_id,
                               raw_object=RawObject(store.bucket, key, sha256, len(raw)))
            await producer.send(topic, key=record_id.encode(), value=encode_event(event))

    try:
        await asyncio.gather(*(one(i) for i in range(n)))
        conn = await asyncpg.connect(settings.database.dsn)
        try:
            await conn.execute(_MANIFEST, source, store.bucket, *unnest_columns(rows))
        finally:
            await conn.close()
    finally:
        await producer.close()
        await store.close()


async def _job_seconds(dsn: str, job_id: str) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT extract(epoch FROM ended_at - started_at)::float8 FROM job_runs WHERE job_run_id = $1::uuid",
            job_id)
        return float(value)
    finally:
        await conn.close()


async def _stale_cleanup(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM outbox_events WHERE topic LIKE 'bench%' AND published_at IS NULL")
    finally:
        await conn.close()


async def _cleanup(dsn: str) -> None:
    """In the stack's own database (no CREATEDB), the bare-load phases' idempotency keys go
    (the run's outbox rows go with ``ScratchRun.close``; the raw objects with its bucket)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM idempotency_keys WHERE client_id IN ('floor', 'bench-core')")
    finally:
        await conn.close()


async def _cleanup_scratch(dsn: str, topic: str) -> None:
    """A bare-load phase's outbox rows: written like the service's, never to be published."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM outbox_events WHERE topic = $1", topic)
    finally:
        await conn.close()


def _stack_uptime_s(stack: Stack) -> float:
    """Seconds since the most recently started of the stack's servers began."""
    uptimes = [up for pid in stack_pids(stack).values() if pid is not None and (up := uptime_s(pid)) is not None]
    return round(min(uptimes), 1) if uptimes else 0.0


TARGETS = {
    "ingest_ratio": (">=", 0.85), "e2e_p95_ms": ("<=", 500), "publisher_drain_eps": (">=", 5000),
    "normalizer_rps": (">=", 1000), "replay_rps": (">=", 2000), "normalizer_ratio": (">=", 0.85),
    "normalizer_split_cpu_ratio": ("<=", 1.5), "normalizer_scaling_2_over_1": (">=", 1.0),
    "rss_mb_peak": ("<=", 400), "graphql_ratio": (">=", 0.5),
}


def markdown(results: dict[str, Any]) -> str:
    rows = ["| metric | value | target |", "|---|---|---|"]
    for key in ("database_mb_at_start", "ingest_rps", "ingest_p50_ms", "ingest_p99_ms", "ingest_backlog_at_end",
                "ingest_catchup_s", "pipeline_rps", "ingest_c1_rps", "ingest_c1_p50_ms", "ingest_c8_rps",
                "floor_rps", "ingest_ratio", "ingest_split_rps",
                "ingest_split_ratio", "ingest_scaling_2_over_1", "core_rps", "core_ratio", "e2e_p50_ms",
                "e2e_p95_ms", "e2e_p99_ms", "publisher_drain_eps", "normalizer_rps", "normalizer_wall_rps",
                "normalizer_floor_rps", "normalizer_ratio", "normalizer_split_rps", "normalizer_split_cpu_ratio",
                "normalizer_scaling_2_over_1",
                "replay_rps", "replay_objects_read", "replay_read_rps", "rss_mb_peak", "query_rest_pages_per_s",
                "query_graphql_pages_per_s", "query_rest_p95_ms", "query_graphql_p95_ms", "graphql_ratio"):
        value = results.get(key)
        target = TARGETS.get(key)
        shown = f"{value:,.2f}" if isinstance(value, float) and value < 10 else (
            f"{value:,.0f}" if isinstance(value, (int, float)) else str(value))
        met = ""
        if target is not None and isinstance(value, (int, float)):
            op, bound = target
            met = f"{op} {bound:,} " + ("✓" if (value >= bound if op == ">=" else value <= bound) else "✗")
        rows.append(f"| {key} | {shown} | {met} |")
    return "\n".join(rows) + _cpu_table(results.get("cpu", {})) + _batch_line(results.get("ingest_batches", {}))


def _batch_line(batches: dict[str, Any]) -> str:
    """Where an ingest batch's time goes (the all-roles rounds, warm-up included)."""
    if not batches.get("count"):
        return ""
    phases = ", ".join(f"{phase} {ms:.1f}" for phase, ms in batches["phase_ms_mean"].items())
    return (f"\n\nIngest batches (all-roles rounds): {batches['count']:,}, {batches['size_mean']:.1f} requests "
            f"each on average; mean ms a batch spent in each phase: {phases}.")


_CPU_COLUMNS = ("server", "postgres", "s3", "kafka", "load", "other", "total")


def _cpu_table(cpu: dict[str, Any]) -> str:
    """CPU ms per record by component, one row per phase: where the time goes."""
    if not cpu:
        return ""
    rows = ["", "", "CPU ms per record (from /proc over each measured window):", "",
            "| phase | " + " | ".join(_CPU_COLUMNS) + " | cores busy | steal % |",
            "|---" * (len(_CPU_COLUMNS) + 3) + "|"]
    for phase, data in cpu.items():
        per = data["ms_per_record"]
        cells = " | ".join(f"{per[c]:.2f}" if c in per else "-" for c in _CPU_COLUMNS)
        rows.append(f"| {phase} | {cells} | {data['cores_busy']:.2f} | {data['steal_pct']:.1f} |")
    return "\n".join(rows)

