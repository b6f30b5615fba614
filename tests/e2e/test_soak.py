"""`exchange soak`, one minute of it on the session's stack: capacity measured by a burst, then
half of it as steady load with every role in one process, sampled.

Whether the series are flat is not asserted (a minute on a shared machine says little about a
leak; the thirty-minute run does); that every sample was taken, nothing restarted, every
accepted record was normalized and the JSON holds the slopes and the verdict is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exchange_bench.soak import SoakConfig, run_soak
from exchange_bench.soak.trend import SERIES
from exchange_stack import Stack

KEYS = {"passed", "server_ended", "run_id", "measured_at", "config", "machine", "capacity", "rate", "load_s",
        "settle_s", "ingests", "normalized", "all_normalized", "drain_s", "slopes_per_minute", "limits_per_minute",
        "samples_judged", "growing", "task_restarts", "flat", "samples", "raw_slopes_per_minute"}


@pytest.mark.timeout(480)
def test_a_one_minute_soak_samples_everything_and_nothing_restarts(stack: Stack, tmp_path: Path) -> None:
    output = tmp_path / "soak.json"
    cfg = SoakConfig(stack_root=stack.root, duration_s=60.0, capacity_records=300, concurrency=8, sample_interval_s=2.0,
                     settle_s=20.0, output=output)
    lines: list[str] = []
    results = run_soak(cfg, report=lines.append, stack=stack)

    assert json.loads(output.read_text()) == results
    assert set(results) == KEYS
    capacity = results["capacity"]
    assert capacity["accepted"] == capacity["records"] == 300 and capacity["end_to_end_rps"] > 0
    assert capacity["end_to_end_rps"] <= capacity["ingest_rps"] * (1 + 1e-9)  # the catch-up counts
    assert results["rate"] == pytest.approx(capacity["end_to_end_rps"] / 2)
    ingests = results["ingests"]
    assert ingests["keys"] == ingests["accepted"] == round(results["rate"] * 60), ingests
    assert ingests["server_errors_other_than_503"] == 0 and ingests["non_202_not_problem_json"] == 0
    assert results["all_normalized"] is True and results["normalized"] == ingests["accepted"]
    assert results["task_restarts"] == 0 and results["server_ended"] is None
    samples = results["samples"]
    assert len(samples) >= 25  # a sample every 2 s for a minute (a slow sample delays the next)
    assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)
    for sample in samples:
        assert set(sample) == {"t", "task_restarts", *SERIES}
        assert sample["rss_mb"] > 0 and sample["fds"] > 0 and sample["tcp_sockets"] > 0
        assert sample["pg_connections"] > 0  # the server's pool, on the run's own database
        assert sample["outbox_backlog"] >= 0 and sample["consumer_lag"] >= 0
    assert set(results["slopes_per_minute"]) == set(results["limits_per_minute"]) == set(SERIES)
    assert results["samples_judged"] == len([s for s in samples if s["t"] >= 20.0])
    assert results["flat"] == (not results["growing"])
    assert results["passed"] == (results["flat"] and results["all_normalized"])  # and the server lived
    assert lines[-1].startswith("soak: ") and "| rss_mb |" in lines[-1]
