"""``exchange soak``: every role in one ``exchange serve`` process under steady load at half its
measured capacity, sampled every few seconds; the slopes and the verdict go to
``benchmarks/results/soak.json``.

Load comes from the chaos run's client (``exchange_bench.chaos.load``: a record every ``1 / rate``
seconds, retried with its key on a 503), on a database, bucket and topics of the run's own
(``ScratchRun``). Capacity is measured first on the same server with the same records, unless a
rate is given: a burst of records with a bounded number in flight (a closed loop) and the time
until every one is canonical, so it is what the whole pipeline sustains, not what ingest alone
accepts while the normalizer falls behind. (A first cut measured it with the benchmark's plain v1
records; the soak's v2 records, with every canary class, cost the normalizer more and the lag
grew from the first minute.)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exchange_bench.chaos.answers import AnswerLog
from exchange_bench.machine import machine
from exchange_bench.scratch import ScratchRun, token
from exchange_bench.server import Server
from exchange_bench.soak.probe import DatabaseProbe, GroupLag, process_sample, task_restarts
from exchange_bench.soak.trend import Tolerances, verdict
from exchange_stack import Stack

__all__ = ("SoakConfig", "run_soak")


@dataclass(frozen=True, slots=True)
class SoakConfig:
    stack_root: Path
    duration_s: float = 1800.0
    """Seconds of steady load."""
    rate: float | None = None
    """Records started a second; None: half the capacity measured first."""
    capacity_records: int = 4000
    """Records of the closed-loop burst that measures capacity."""
    concurrency: int = 32
    """Records in flight during the burst."""
    sample_interval_s: float = 5.0
    settle_s: float | None = None
    """Samples before this many seconds of load are not judged (default a fifth of the run, at most
    three minutes): pools filling and caches warming are not a leak."""
    drain_timeout_s: float = 600.0
    tolerances: Tolerances = field(default_factory=Tolerances)
    output: Path = Path("benchmarks/results/soak.json")

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or self.sample_interval_s <= 0 or self.capacity_records < 1:
            raise ValueError("duration, sample interval and capacity burst must be positive")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive")

    @property
    def settle(self) -> float:
        return self.settle_s if self.settle_s is not None else min(180.0, self.duration_s / 5)


def run_soak(cfg: SoakConfig, report: Callable[[str], None] = print, *, stack: Stack | None = None) -> dict[str, Any]:
    """The soak on ``stack`` (default: the developer stack at ``cfg.stack_root``, started)."""
    if stack is None:
        stack = Stack(cfg.stack_root)
        stack.up()
    scratch = Path(tempfile.mkdtemp(prefix="exchange-soak-"))
    load_before = os.getloadavg()
    with ScratchRun.open(stack, report) as run, Server(run.env, "all", scratch) as server:
        dsn = run.env["DATABASE_URL"]
        capacity: dict[str, float] | None = None
        if cfg.rate is None:
            capacity = _capacity(cfg, server, dsn, run.run_id, scratch, report)
            rate = capacity["end_to_end_rps"] / 2
        else:
            rate = cfg.rate
        source, answers = f"soak-{run.run_id}", AnswerLog(scratch / "answers.jsonl")
        report(f"soak: {rate:.1f} records/s for {cfg.duration_s:.0f}s, sampled every {cfg.sample_interval_s:.0f}s ...")
        started = time.monotonic()
        load = _start_load(server.port, source, f"soak-{run.run_id}", max(1, round(rate * cfg.duration_s)), rate,
                           answers.path, scratch / "load.log", ttl_s=int(cfg.duration_s) + 3600)
        lag = GroupLag(run.env["KAFKA_BROKERS"], run.env["KAFKA_CONSUMER_GROUP"],
                       [run.env["TOPIC_RECORD_INGESTED_V1"], run.env["TOPIC_RECORD_INGESTED_V2"]], partitions=6)
        try:
            assert server.proc is not None
            samples = asyncio.run(_sample(cfg, server, dsn, lag, load, report))
        finally:
            lag.close()
            if load.poll() is None:
                load.kill()
            load.wait(timeout=30)
        load_s = time.monotonic() - started
        answers.refresh()
        report(f"drain: waiting for {len(answers.accepted):,} accepted records ...")
        drain_s, normalized = asyncio.run(_drain(dsn, source, len(answers.accepted), cfg.drain_timeout_s, server))
        server_ended = None if _alive(server) else server.proc.returncode if server.proc is not None else None
        restarts_at_end = task_restarts(server.port) if server_ended is None else 0
    judged = verdict(samples, settle_s=cfg.settle, rate=rate, tolerances=cfg.tolerances)
    judged["task_restarts"] = max(judged["task_restarts"], int(restarts_at_end))
    ingests = answers.summary()
    all_normalized = normalized == ingests["accepted"] == ingests["keys"]
    results = {
        "passed": judged["flat"] and judged["task_restarts"] == 0 and all_normalized and server_ended is None,
        "server_ended": server_ended,
        "run_id": run.run_id,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {k: (asdict(v) if k == "tolerances" else str(v) if isinstance(v, Path) else v)
                   for k, v in ((f, getattr(cfg, f)) for f in cfg.__dataclass_fields__)},
        "machine": {**machine(), "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg())},
        "capacity": capacity,
        "rate": rate,
        "load_s": round(load_s, 1),
        "settle_s": cfg.settle,
        "ingests": ingests,
        "normalized": normalized,
        "all_normalized": all_normalized,
        "drain_s": round(drain_s, 1),
        **judged,
        "samples": samples,
    }
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    report(markdown(results))
    return results


def _capacity(cfg: SoakConfig, server: Server, dsn: str, run_id: str, scratch: Path,
              report: Callable[[str], None]) -> dict[str, float]:
    """A closed-loop burst of the soak's own records, then the wait until every one is canonical."""
    report(f"capacity: {cfg.capacity_records:,} records, {cfg.concurrency} in flight, then the pipeline's catch-up ...")
    source, answers = f"soak-burst-{run_id}", AnswerLog(scratch / "burst.jsonl")
    started = time.monotonic()
    load = _start_load(server.port, source, f"soak-burst-{run_id}", cfg.capacity_records, 1e5, answers.path,
                       scratch / "load.log", ttl_s=3600, concurrency=cfg.concurrency)
    load.wait(timeout=cfg.drain_timeout_s)
    ingest_s = time.monotonic() - started
    answers.refresh()
    accepted = len(answers.accepted)
    catchup_s, _ = asyncio.run(_drain(dsn, source, accepted, cfg.drain_timeout_s, server))
    if not _alive(server):
        raise RuntimeError(f"the server ended during the capacity burst; see {server.log}")
    wall = time.monotonic() - started
    return {"records": cfg.capacity_records, "accepted": accepted, "ingest_s": round(ingest_s, 2),
            "ingest_rps": accepted / ingest_s, "catchup_s": round(catchup_s, 2), "end_to_end_rps": accepted / wall}


def _start_load(port: int, source: str, label: str, count: int, rate: float, out: Path, log: Path, *,
                ttl_s: int, concurrency: int = 0) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "exchange_bench.chaos.load", "--port", str(port),
             "--token", token("soak-client", "ingest:write", ttl_s=ttl_s), "--source", source, "--label", label,
             "--count", str(count), "--rate", str(rate), "--concurrency", str(concurrency), "--out", str(out)],
            stdout=err, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


async def _sample(cfg: SoakConfig, server: Server, dsn: str, lag: GroupLag, load: subprocess.Popen[bytes],
                  report: Callable[[str], None]) -> list[dict[str, float]]:
    """A sample every ``cfg.sample_interval_s`` until the load process ends (or the server does)."""
    assert server.proc is not None
    pid, port = server.proc.pid, server.port
    db = await DatabaseProbe.connect(dsn)
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    next_report = started + 60
    try:
        while load.poll() is None and _alive(server):
            sample = {"t": round(time.monotonic() - started, 2),
                      **process_sample(pid), **await db.sample(),
                      "consumer_lag": await asyncio.to_thread(lag.sample),
                      "task_restarts": await asyncio.to_thread(task_restarts, port)}
            samples.append(sample)
            if time.monotonic() >= next_report:
                next_report += 60
                report(f"  t={sample['t']:.0f}s rss={sample['rss_mb']:.0f}MB fds={sample['fds']:.0f} "
                       f"pg={sample['pg_connections']:.0f} backlog={sample['outbox_backlog']:.0f} "
                       f"lag={sample['consumer_lag']:.0f} restarts={sample['task_restarts']:.0f}")
            await asyncio.sleep(max(0.0, started + len(samples) * cfg.sample_interval_s - time.monotonic()))
    finally:
        await db.close()
    return samples


async def _drain(dsn: str, source: str, expected: int, timeout_s: float, server: Server) -> tuple[float, int]:
    """Seconds until ``expected`` records of ``source`` are canonical (or the timeout, or the server's
    end), and how many are."""
    db = await DatabaseProbe.connect(dsn)
    started = time.monotonic()
    try:
        while True:
            count = await db.canonical(source)
            if count >= expected or time.monotonic() - started >= timeout_s or not _alive(server):
                return time.monotonic() - started, count
            await asyncio.sleep(0.2)
    finally:
        await db.close()


def _alive(server: Server) -> bool:
    return server.proc is not None and server.proc.poll() is None


def markdown(results: dict[str, Any]) -> str:
    """The verdict and each series' slope against its limit."""
    rows = [f"soak: {'passed' if results['passed'] else 'FAILED'} -- {results['rate']:.1f} records/s for "
            f"{results['load_s']:.0f}s, {results['ingests']['accepted']:,} accepted, {results['normalized']:,} "
            f"normalized, task restarts {results['task_restarts']}", "",
            "| series | first | last | slope / min | limit / min |", "|---|---|---|---|---|"]
    first, last = (results["samples"][0], results["samples"][-1]) if results["samples"] else ({}, {})
    for name, slope in results["slopes_per_minute"].items():
        rows.append(f"| {name} | {first.get(name, float('nan')):,.1f} | {last.get(name, float('nan')):,.1f} | "
                    f"{slope:,.3f} | {results['limits_per_minute'][name]:,.2f} |")
    return "\n".join(rows)
