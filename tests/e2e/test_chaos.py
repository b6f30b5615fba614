"""`exchange chaos`'s short schedule, on the session's stack: every fault kind once while a
few hundred records arrive at a steady rate from the client process, then the checker.

What must hold whatever the machine's speed: every kind of fault was caused, every accepted
record is canonical exactly once (none lost at any sampled moment, none doubled), every
answer other than a 202 was a problem+json and no 5xx but a 503, the crash after the PUT left
orphans that reconcile --repair quarantined, and no canary left raw storage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exchange_bench.chaos import ChaosConfig, run_chaos
from exchange_bench.chaos.faults import FAULT_KINDS
from exchange_stack import Stack

KEYS = {"passed", "run_id", "measured_at", "config", "machine", "deployment", "load_s", "ingests", "faults",
        "recovery_s", "during_run", "drain", "dlq", "check", "reconcile", "privacy", "unanswered_keys"}


@pytest.mark.timeout(420)
def test_a_short_fault_schedule_loses_nothing_doubles_nothing_and_leaks_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    output = tmp_path / "chaos.json"
    cfg = ChaosConfig(stack_root=stack.root, count=300, rate=2.5, rounds=1, hold_s=2.0, crash_hold_s=1.5,
                      warmup_s=3.0, recovery_timeout_s=60.0, drain_timeout_s=120.0, sample_interval_s=2.0,
                      output=output)
    lines: list[str] = []
    results = run_chaos(cfg, report=lines.append, stack=stack)

    assert json.loads(output.read_text()) == results
    assert set(results) == KEYS
    assert results["faults"]["by_kind"] == dict.fromkeys(sorted(FAULT_KINDS), 1), results["faults"]
    assert results["faults"]["skipped"] == []
    ingests, check = results["ingests"], results["check"]
    assert ingests["keys"] == ingests["accepted"] == 300, ingests
    assert ingests["retries"] > 0  # the faults were felt by the client
    assert ingests["server_errors_other_than_503"] == 0, ingests
    assert ingests["non_202_not_problem_json"] == 0, ingests
    assert results["during_run"]["samples"] > 10
    assert results["during_run"]["lost_at_some_moment"] == 0, results["during_run"]
    assert results["during_run"]["most_in_flight_judged"] > 0  # the offset rule had records to judge
    assert (check["lost"], check["duplicated"], check["canonical_without_raw"]) == (0, 0, 0), check
    assert check["canonical_rows"] == 300
    assert results["dlq"]["reprocess_failed"] == 0
    reconciled = results["reconcile"]
    assert reconciled["orphans_found"] > 0, reconciled  # the crash after the PUT left objects without rows
    assert reconciled["quarantined"] == reconciled["orphans_found"]
    assert reconciled["clean_after_repair"] is True
    privacy = results["privacy"]
    assert privacy["hits"] == 0, privacy["hits_by_place"]
    assert privacy["canary_classes"] == 18
    assert privacy["raw_storage"]["objects_with_every_canary_class"] == privacy["raw_storage"]["objects_read"] > 0
    assert any(p.startswith("table record_persons") for p in privacy["places"])
    assert any(p.startswith("topic ") and p.endswith(".dlq") for p in privacy["places"])
    for kind in FAULT_KINDS:
        assert results["recovery_s"][kind]["not_recovered"] == 0, results["recovery_s"]
    assert results["passed"] is True
    assert "| lost / duplicated at the end | 0 / 0 |" in lines[-1]
