"""The normalizer phases of ``exchange bench``: its floor, one process with the tokenizer in it,
a split one calling a tokenizer process, one to three processes in one consumer group, and one
of three killed mid-backlog.

Each phase gets a backlog on a topic and consumer group of its own (a group's committed offsets
and static members never carry over into the next phase), pre-published as ingest leaves it.
Rates are first to last canonical row: joining the group is not throughput.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from exchange.adapters.kafka import ensure_topics
from exchange.settings import load_settings
from exchange_bench.cpu import CpuMeter, cpu_breakdown
from exchange_bench.server import Server, stack_pids
from exchange_stack import Stack

__all__ = ("NormalizerPhases",)

_PARTITIONS = 6


@dataclass
class NormalizerPhases:
    stack: Stack
    env: dict[str, str]
    dsn: str
    run_id: str
    scratch: Path
    report: Callable[[str], None]
    prepublish: Callable[[Any, str, str, int], Any]
    """``runner._prepublish``: (settings, source, topic, n) -> coroutine."""

    def _phase(self, label: str, n: int) -> tuple[dict[str, str], str]:
        """A topic and group of the phase's own, and its backlog of ``n`` records on it."""
        topic = f"bench{self.run_id}.{label}"
        env = {**self.env, "TOPIC_RECORD_INGESTED_V1": topic, "KAFKA_TOPICS": topic,
               "TOPIC_RECORD_INGESTED_V2": f"{topic}-v2", "KAFKA_DLQ_TOPIC_V1": f"{topic}.dlq",
               "KAFKA_DLQ_TOPIC_V2": f"{topic}-v2.dlq", "KAFKA_CONSUMER_GROUP": f"bench{self.run_id}-{label}"}
        ensure_topics(env["KAFKA_BROKERS"], [topic, f"{topic}-v2", f"{topic}.dlq", f"{topic}-v2.dlq"],
                      partitions=_PARTITIONS)
        source = f"bench-{label}-{self.run_id}"
        asyncio.run(self.prepublish(load_settings(env), source, topic, n))
        return env, source

    def floor(self, n: int, concurrency: int, *, bare: bool = False, label: str = "nfloor") -> dict[str, Any]:
        """The per-record work without the service (``normalizer_floor``) over a backlog of its own;
        ``bare``: the first floor's work (the seed token and the canonical row only)."""
        self.report(f"normalizer floor{' (bare)' if bare else ''}: {n} records ...")
        env, _source = self._phase(label + ("b" if bare else ""), n)
        out = self.scratch / "normalizer-floor.json"
        subprocess.run([sys.executable, "-m", "exchange_bench.normalizer_floor", "--records", str(n),
                        "--concurrency", str(concurrency), "--out", str(out), *(["--bare"] if bare else [])],
                       env={**os.environ, **env}, check=True, timeout=900)
        result: dict[str, Any] = json.loads(out.read_text())
        return result

    def run(self, label: str, n: int, processes: int = 1, *, split: bool = False) -> dict[str, Any]:
        """``processes`` normalizers (each with the tokenizer in it, or calling one tokenizer
        process when ``split``) in one group over a backlog of ``n``; rate and CPU a record."""
        self.report(f"normalizer {label}: {n} records, {processes} process(es){', split' if split else ''} ...")
        env, source = self._phase(label, n)
        with ExitStack() as servers:
            components: dict[str, int | None] = {}
            if split:
                tokenizer = servers.enter_context(Server(env, "tokenizer", self.scratch))
                env = {**env, "TOKENIZER_URL": f"http://127.0.0.1:{tokenizer.port}"}
                components["tokenizer"] = _pid(tokenizer)
            roles = "normalizer" if split else "normalizer,tokenizer"
            members = _start_together(servers, [
                Server({**env, "KAFKA_GROUP_INSTANCE_ID": f"bench-{label}-{i}"}, roles, self.scratch)
                for i in range(processes)])
            components.update({f"normalizer-{i}": _pid(m) for i, m in enumerate(members)})
            meter = CpuMeter({**components, **stack_pids(self.stack)})
            asyncio.run(_wait_canonical(self.dsn, source, 1, timeout=300))
            before = meter.sample()
            asyncio.run(_wait_canonical(self.dsn, source, n, timeout=900))
            after = meter.sample()
        rps = n / asyncio.run(_span(self.dsn, source))
        cpu = cpu_breakdown(before, after, (n - 1) / max(after.at - before.at, 1e-6))
        normalizers = sum(v for k, v in cpu["ms_per_record"].items() if k.startswith("normalizer-"))
        return {"rps": rps, "normalizer_cpu_ms_per_record": round(normalizers, 3), "cpu": cpu}

    def scaling(self, n: int, counts: tuple[int, ...] = (1, 2, 3),
                between: Callable[[], None] = lambda: None) -> tuple[dict[str, float], list[dict[str, float]]]:
        """Groups of each size in ``counts`` over backlogs of ``n``, run in order and then in reverse
        (1, 2, 3, 3, 2, 1): the database grows from phase to phase and each record costs it a
        little more, so a fixed order favoured whichever size ran first. The mean of each size's two
        runs, and every run; ``between`` runs before each (a vacuum)."""
        runs: list[dict[str, float]] = []
        for i, processes in enumerate((*counts, *reversed(counts))):
            between()
            runs.append({"processes": processes, "rps": self.run(f"nscale{processes}r{i}", n, processes)["rps"]})
        means = {str(c): sum(r["rps"] for r in runs if r["processes"] == c) / 2 for c in counts}
        return means, runs

    def kill_one_of_three(self, n: int) -> dict[str, Any]:
        """Three members; one killed (SIGKILL) a third of the way through. Nothing may be lost
        or doubled; recovery is how long its partitions stood still (static membership: until
        the group's session timeout passes and the others take them over)."""
        self.report(f"normalizer kill: {n} records, 3 processes, one killed mid-backlog ...")
        env, source = self._phase("nkill", n)
        with ExitStack() as servers:
            members = _start_together(servers, [
                Server({**env, "KAFKA_GROUP_INSTANCE_ID": f"bench-nkill-{i}"}, "normalizer,tokenizer", self.scratch)
                for i in range(3)])
            asyncio.run(_wait_canonical(self.dsn, source, n // 3, timeout=600))
            killed_at = time.time()
            victim = members[1]
            assert victim.proc is not None
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(timeout=30)
            asyncio.run(_wait_canonical(self.dsn, source, n, timeout=900))
        facts = asyncio.run(_after_kill(self.dsn, source, killed_at))
        return {"records": n, **facts}


def _start_together(servers: ExitStack, members: list[Server]) -> list[Server]:
    """Start the group's members at once, as a deployment does: started one after another (each
    a few seconds to ready), the first took every partition and the group rebalanced as each next
    one joined, inside the measured span -- a short backlog then measured the joining, not the rate."""
    for member in members:
        servers.callback(_stop, member)
    with ThreadPoolExecutor(max_workers=len(members)) as pool:
        list(pool.map(Server.start, members))
    return members


def _stop(server: Server) -> None:
    if server.proc is not None:
        server.__exit__()


def _pid(server: Server) -> int:
    assert server.proc is not None
    return server.proc.pid


_FAST_RPS = 5_000  # faster than any phase runs: the wait never sleeps past the last row by much


async def _wait_canonical(dsn: str, source: str, at_least: int, *, timeout: float) -> None:
    """Until ``at_least`` rows of ``source`` are canonical. The count is PostgreSQL's work on the
    measured machine: polled every 50 ms it took a few per cent of a core from the phase it
    measured. So the wait sleeps about as long as the rows still missing take at a fast rate,
    and polls often only near the end (the rate comes from the rows' own timestamps anyway)."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        while (done := await conn.fetchval("SELECT count(*) FROM canonical_records WHERE source = $1",
                                           source)) < at_least:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {at_least} canonical rows of {source} after {timeout} s")
            await asyncio.sleep(min(1.0, max(0.05, (at_least - done) / _FAST_RPS)))
    finally:
        await conn.close()


async def _span(dsn: str, source: str) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval("SELECT extract(epoch FROM max(normalized_at) - min(normalized_at))::float8 "
                                    "FROM canonical_records WHERE source = $1", source)
        return max(float(value or 0.0), 1e-3)
    finally:
        await conn.close()


_AFTER_KILL = """
WITH per_partition AS (
    SELECT s.kafka_partition AS p,
           min(s.last_success_at) FILTER (WHERE s.last_success_at > to_timestamp($2)) AS resumed,
           max(s.last_success_at) FILTER (WHERE s.last_success_at <= to_timestamp($2)) AS before
    FROM processing_stage_state s JOIN canonical_records c USING (record_id)
    WHERE c.source = $1 AND s.status = 'succeeded'
    GROUP BY s.kafka_partition
)
SELECT (SELECT count(*) FROM canonical_records WHERE source = $1) AS canonical,
       (SELECT count(*) FROM raw_object_manifest WHERE source = $1) AS sent,
       (SELECT count(*) FROM processing_attempts a JOIN canonical_records c USING (record_id)
         WHERE c.source = $1 AND a.result = 'inserted') AS inserted,
       (SELECT count(DISTINCT a.record_id) FROM processing_attempts a JOIN canonical_records c USING (record_id)
         WHERE c.source = $1 AND a.attempt_no > 1) AS redelivered,
       (SELECT max(extract(epoch FROM resumed) - $2) FROM per_partition WHERE resumed IS NOT NULL) AS recovery_s
"""


async def _after_kill(dsn: str, source: str, killed_at: float) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(_AFTER_KILL, source, killed_at)
    finally:
        await conn.close()
    assert row is not None
    return {"lost": int(row["sent"]) - int(row["canonical"]), "doubled": int(row["inserted"]) - int(row["canonical"]),
            "redelivered": int(row["redelivered"]), "recovery_s": round(float(row["recovery_s"] or 0.0), 2)}


def run_normalizer_bench(stack: Stack, *, records: int, scaling_records: int, concurrency: int,
                         output: Path | None, prepublish: Callable[[Any, str, str, int], Any],
                         report: Callable[[str], None] = print) -> dict[str, Any]:
    """The normalizer phases alone, in a scratch run of their own: in one process (the reference
    of the split's CPU ratio), against its floor, split, scaled out to 1, 2 and 3 processes, and
    one of three killed. Keys named as ``make bench`` names them, merged into ``output``."""
    from exchange_bench.scratch import ScratchRun  # noqa: PLC0415 - a bench-only dependency chain

    with ScratchRun.open(stack, report) as run:
        scratch = Path(tempfile.mkdtemp(prefix="exchange-bench-normalizers-"))
        phases = NormalizerPhases(stack, run.env, run.env["DATABASE_URL"], run.run_id, scratch, report, prepublish)
        one = phases.run("none", records)
        floor = phases.floor(records, concurrency=concurrency)
        bare = phases.floor(records, concurrency=concurrency, bare=True)
        split = phases.run("nsplit", records, split=True)
        scaling, scaling_runs = phases.scaling(scaling_records)
        kill = phases.kill_one_of_three(scaling_records)
    results: dict[str, Any] = {
        "normalizer_alone_rps": one["rps"],
        "normalizer_alone_cpu_ms_per_record": one["normalizer_cpu_ms_per_record"],
        "normalizer_floor_rps": floor["normalizer_floor_rps"],
        "normalizer_floor_bare_rps": bare["normalizer_floor_rps"],
        "normalizer_alone_ratio": one["rps"] / floor["normalizer_floor_rps"],
        "normalizer_split_rps": split["rps"],
        "normalizer_split_cpu_ratio": split["normalizer_cpu_ms_per_record"]
        / max(one["normalizer_cpu_ms_per_record"], 1e-6),
        "normalizer_scaling": scaling,
        "normalizer_scaling_runs": scaling_runs,
        "normalizer_scaling_2_over_1": scaling["2"] / scaling["1"],
        "normalizer_kill_one_of_three": kill,
        "normalizers_measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if output is not None:
        merged = json.loads(output.read_text()) if output.exists() else {}
        merged.update(results)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    report(json.dumps(results, indent=2, sort_keys=True))
    return results
