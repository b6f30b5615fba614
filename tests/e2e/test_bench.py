"""`make bench` end to end at toy sizes: every phase runs and reports a number.

The numbers themselves are not asserted (no timed tests); that the benchmark still runs,
and measures what it says, is.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from exchange.adapters.kafka import delete_topics, ensure_topics, topic_names
from exchange.adapters.objectstore import drop_bucket_sync, ensure_bucket_sync
from exchange_bench.runner import BenchConfig, markdown, run_bench
from exchange_stack import Stack


def _hold_connection(dsn: str) -> Callable[[], None]:
    """A session open on ``dsn`` (in a thread of its own) until the returned function is called."""
    ready, done = threading.Event(), threading.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(dsn)
        ready.set()
        await asyncio.to_thread(done.wait)
        await conn.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),), daemon=True)
    thread.start()
    assert ready.wait(30)

    def release() -> None:
        done.set()
        thread.join(30)

    return release


async def _sql(stack: Stack, *statements: str) -> None:
    conn = await asyncpg.connect(stack.env()["DATABASE_URL"])
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _bench_databases(stack: Stack) -> list[str]:
    conn = await asyncpg.connect(stack.env()["DATABASE_URL"])
    try:
        return [r["datname"] for r in await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'exchange_bench_%'")]
    finally:
        await conn.close()


def _s3(stack: Stack, call: Callable[..., object], bucket: str) -> None:
    env = stack.env()
    call(env["S3_ENDPOINT"], bucket, env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])


def _bench_topics(stack: Stack) -> list[str]:
    return [name for name in topic_names(stack.kafka.brokers) if name.startswith("bench")]


def _bench_buckets(stack: Stack) -> list[str]:
    return [name for name in stack.s3.bucket_names() if name.startswith("exchange-bench-")]


METRICS = (
    "ingest_rps", "ingest_p50_ms", "ingest_p99_ms", "floor_rps", "ingest_ratio", "ingest_split_rps",
    "e2e_p50_ms", "e2e_p95_ms", "e2e_p99_ms", "publisher_drain_eps", "normalizer_rps", "replay_rps",
    "rss_mb_peak", "ingest_catchup_s", "core_rps", "core_ratio", "replay_read_rps",
    "normalizer_floor_rps", "normalizer_ratio", "normalizer_split_rps", "normalizer_split_cpu_ratio",
    "normalizer_scaling_2_over_1", "pipeline_rps", "ingest_c1_rps", "ingest_c1_p50_ms", "ingest_c8_rps",
    "query_rest_pages_per_s", "query_graphql_pages_per_s", "query_rest_p95_ms", "query_graphql_p95_ms", "graphql_ratio",
    "ingest_scaling_2_over_1", "normalizer_floor_bare_rps",
)


@pytest.mark.timeout(600)
def test_the_benchmark_runs_every_phase_and_writes_its_json(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    cfg = BenchConfig(stack_root=stack.root, concurrency=8, duration_s=2.0, e2e_rate=20.0, e2e_duration_s=2.0,
                      drain_rows=500, normalizer_records=200, scaling_records=300, warmup_s=1.0, rounds=2,
                      query_rows=5000, query_duration_s=1.0, output=out)
    lines: list[str] = []
    # A killed run's database is dropped by the next run; one in use (a run going on) is not.
    asyncio.run(_sql(stack, 'CREATE DATABASE "exchange_bench_killed"', 'CREATE DATABASE "exchange_bench_busy"'))
    release = _hold_connection(stack.env()["DATABASE_URL"].rsplit("/", 1)[0] + "/exchange_bench_busy")
    # So are their buckets (with what they hold): the killed run's, not the busy one's.
    for bucket in ("exchange-bench-killed", "exchange-bench-busy"):
        _s3(stack, ensure_bucket_sync, bucket)
    # And their topics (bench<run_id>.<purpose>).
    ensure_topics(stack.kafka.brokers, ["benchkilled.v1", "benchbusy.v1"], partitions=1)
    try:
        results = run_bench(cfg, report=lines.append, stack=stack)
        assert asyncio.run(_bench_databases(stack)) == ["exchange_bench_busy"]
        assert _bench_buckets(stack) == ["exchange-bench-busy"]
        assert _bench_topics(stack) == ["benchbusy.v1"]  # the run's own are gone too
    finally:
        release()
        asyncio.run(_sql(stack, 'DROP DATABASE IF EXISTS "exchange_bench_busy"'))
        _s3(stack, drop_bucket_sync, "exchange-bench-busy")
        delete_topics(stack.kafka.brokers, ["benchbusy.v1"])

    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    for key in METRICS:
        value = results[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, key
    for key in ("ingest_rps", "floor_rps", "core_rps", "publisher_drain_eps", "normalizer_rps", "replay_rps",
                "rss_mb_peak"):
        assert results[key] > 0, key
    # The replay of objects as ingest leaves them reads none of them; --read-raw reads them all.
    assert (results["replay_objects_read"], results["replay_read_objects_read"]) == (0, 200)
    assert results["replay_read_rps"] > 0
    by_phase = results["rss_mb_by_phase"]  # which server the peak was
    assert set(by_phase) == {"all_roles", "split", "publisher", "normalizer"}
    assert max(by_phase.values()) == results["rss_mb_peak"] and min(by_phase.values()) > 0
    assert set(results["ingest_statuses"]) == {"202"}  # every request of the load was accepted
    assert results["e2e_records"] == 40  # 20/s for 2 s, every one traced to its canonical row
    # Ingest, split ingest and floor alternated; each headline rate counts all of its rounds.
    assert len(results["rounds"]) == 2
    assert results["stack_uptime_s"] > 0  # how long the stack's servers had been up
    phases = [line.split(": ")[1] for line in lines if line.startswith("round ")]
    assert phases == ["ingest, all roles", "ingest, ingest and publisher roles only ...",
                      "floor, the ingest work without the service ...",  # round 2 runs them in reverse
                      "floor, the ingest work without the service ...",
                      "ingest, ingest and publisher roles only ...", "ingest, all roles"]
    for side in ("ingest_rps", "ingest_split_rps", "floor_rps"):
        per_round = [r[side] for r in results["rounds"]]
        assert all(rate > 0 for rate in per_round), side
        assert min(per_round) * (1 - 1e-9) <= results[side] <= max(per_round) * (1 + 1e-9), side
    assert results["ingest_backlog_at_end"] >= 0
    # Ingest on one port served by one process and by two (--reuse-port), alternating rounds.
    assert set(results["ingest_scaling"]) == {"1", "2"}
    assert all(rate > 0 for rate in results["ingest_scaling"].values())
    assert [line.split(":")[0] for line in lines if line.startswith("ingest scale-out")] == [
        "ingest scale-out 1/2", "ingest scale-out 1/2", "ingest scale-out 2/2", "ingest scale-out 2/2"]
    # The normalizer beside its floor, split, scaled out to 3, and one of 3 killed: nothing lost or doubled.
    assert set(results["normalizer_scaling"]) == {"1", "2", "3"}
    assert all(rate > 0 for rate in results["normalizer_scaling"].values())
    killed = results["normalizer_kill_one_of_three"]
    assert (killed["records"], killed["lost"], killed["doubled"]) == (300, 0, 0)
    assert killed["recovery_s"] >= 0
    assert results["cpu"]["normalizer_split"]["ms_per_record"]["tokenizer"] >= 0  # a few ticks at toy sizes
    # Where the ingest batches' time went, from the server's own histograms.
    batches = results["ingest_batches"]
    assert batches["count"] > 0 and batches["size_mean"] >= 1
    assert set(batches["phase_ms_mean"]) == {"begin", "lookup", "put", "write", "commit"}
    assert all(ms > 0 for ms in batches["phase_ms_mean"].values())
    assert "Ingest batches (all-roles rounds)" in lines[-1]
    assert results["machine"]["cores"] >= 1
    assert lines[-1] == markdown(results)
    assert results["outbox_pending_at_start"] >= 0
    assert results["database_mb_at_start"] > 0  # the size the numbers were measured at
    # The benchmark's records are all valid: none of its topics dead-lettered anything (the
    # drain phase's synthetic rows once reached the normalizer phase and were).
    assert results["dead_lettered"] == 0
    # The run had a database and a bucket of its own, and dropped them (the objects with it).
    assert results["database"] == "own"
    assert not asyncio.run(_bench_databases(stack))
    assert not _bench_buckets(stack)
    # Where the time went, per measured phase: every component charged, the parts add up.
    assert set(results["cpu"]) == {"ingest", "ingest_split", "floor", "core", "normalizer", "normalizer_split"}
    for phase, data in results["cpu"].items():
        per = data["ms_per_record"]
        assert set(per) >= {"postgres", "s3", "kafka", "other", "total"}, phase
        if not phase.startswith("normalizer"):  # the other phases have a load process
            assert per["load"] > 0, phase
        # The split normalizer's toy run: too few records for S3 to use a whole clock tick.
        assert per["postgres"] > 0 and (per["s3"] > 0 or phase == "normalizer_split"), phase
        assert per["other"] >= 0 and per["total"] > 0, phase
        assert 0 <= data["steal_pct"] <= 100, phase
    assert results["cpu"]["ingest"]["ms_per_record"]["server"] > 0
    assert results["cpu"]["normalizer"]["ms_per_record"]["server"] > 0
    assert results["cpu"]["normalizer_split"]["ms_per_record"]["normalizer-0"] > 0
    assert "CPU ms per record" in lines[-1]
    # The query phase ran on the run's database: its rows generated, every statement index-scanned.
    assert results["query_rows"] == 5000
    assert results["query_seq_scans"] == []
    assert "graphql_ratio" in lines[-1]
