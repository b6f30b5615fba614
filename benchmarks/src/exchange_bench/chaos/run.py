"""``exchange chaos``: a split deployment under steady load while a schedule of real faults runs,
then the checker's verdict and the privacy sweep (``benchmarks/results/chaos.json``).

On a database, bucket and topics of the run's own (``ScratchRun``), three ``exchange serve``
processes (``Deployment``), a client process sending records at a steady rate (``load``), the
loss watch sampling during the run (``watch``) and the faults one after another, spaced over
the load's planned duration (``faults``). Afterwards ``check`` and ``privacy``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exchange_bench.chaos.answers import AnswerLog
from exchange_bench.chaos.check import drain, judge, reconcile, reprocess_dlq
from exchange_bench.chaos.deployment import Deployment
from exchange_bench.chaos.faults import FAULT_KINDS, Fault, FaultContext, cause, schedule
from exchange_bench.chaos.privacy import Sweep, person_paths, read_responses
from exchange_bench.chaos.records import CANARY_CLASSES
from exchange_bench.chaos.report import markdown
from exchange_bench.chaos.watch import LossWatch
from exchange_bench.machine import machine
from exchange_bench.scratch import ScratchRun, token
from exchange_stack import Stack

__all__ = ("ChaosConfig", "run_chaos")


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    stack_root: Path
    count: int = 10_000
    """Records the client sends (each until it is accepted or refused for good)."""
    rate: float = 25.0
    """Records started a second, whatever the server answers."""
    rounds: int = 3
    """Each fault kind this many times."""
    kinds: tuple[str, ...] = FAULT_KINDS
    hold_s: float = 8.0
    """How long an outage lasts (Kafka, S3, PostgreSQL, tokenizer)."""
    crash_hold_s: float = 1.0
    """How long the crash-after-PUT trigger stays."""
    warmup_s: float = 10.0
    """Load before the first fault."""
    recovery_timeout_s: float = 180.0
    drain_timeout_s: float = 900.0
    sample_interval_s: float = 3.0
    output: Path = Path("benchmarks/results/chaos.json")
    extra: dict[str, str] = field(default_factory=dict)
    """Environment added to the servers' (tests shorten timeouts with it)."""

    def __post_init__(self) -> None:
        if self.count < 1 or self.rate <= 0 or self.rounds < 1:
            raise ValueError("count, rate and rounds must be positive")
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {', '.join(FAULT_KINDS)}")


def _ensure_stack_up(stack: Stack) -> None:
    """A run stopped mid-fault must not leave a service of the stack down."""
    for state in stack.status():
        if state.state != "running":
            stack.start(state.name)


def _start_load(cfg: ChaosConfig, port: int, source: str, label: str, out: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "exchange_bench.chaos.load", "--port", str(port),
             "--token", token("chaos-client", "ingest:write", ttl_s=24 * 3600), "--source", source, "--label", label,
             "--count", str(cfg.count), "--rate", str(cfg.rate), "--out", str(out)],
            stdout=err, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _faults(cfg: ChaosConfig, ctx: FaultContext, load: subprocess.Popen[bytes], started: float) -> tuple[
        list[Fault], list[str]]:
    plan = schedule(cfg.kinds, cfg.rounds)
    planned_s = cfg.count / cfg.rate
    slot = max(0.0, planned_s - cfg.warmup_s) / (len(plan) + 1)  # the last fault a slot before the end
    done: list[Fault] = []
    for i, kind in enumerate(plan):
        time.sleep(max(0.0, started + cfg.warmup_s + i * slot - time.time()))
        if load.poll() is not None:
            return done, plan[i:]
        done.append(cause(ctx, kind))
    return done, []


def _recovery(faults: list[Fault]) -> dict[str, Any]:
    by_kind: dict[str, list[float | None]] = {}
    for f in faults:
        by_kind.setdefault(f.kind, []).append(f.recovery_s)
    return {kind: {"count": len(values), "max_s": max((v for v in values if v is not None), default=None),
                   "not_recovered": sum(v is None for v in values), "each_s": values}
            for kind, values in by_kind.items()}


def run_chaos(cfg: ChaosConfig, report: Callable[[str], None] = print, *, stack: Stack | None = None) -> dict[str, Any]:
    """The run on ``stack`` (default: the developer stack at ``cfg.stack_root``, started)."""
    if stack is None:
        stack = Stack(cfg.stack_root)
        stack.up()
    scratch = Path(tempfile.mkdtemp(prefix="exchange-chaos-"))
    report(f"chaos: {cfg.count:,} records at {cfg.rate}/s; {cfg.rounds} round(s) of {', '.join(cfg.kinds)}; "
           f"files in {scratch}")
    with ScratchRun.open(stack, report) as run:
        env = {**run.env, **cfg.extra}
        dsn = env["DATABASE_URL"]
        source = f"chaos-{run.run_id}"
        answers_path = scratch / "answers.jsonl"
        answers = AnswerLog(answers_path)
        try:
            with Deployment.start(env, scratch) as deployment:
                watch = LossWatch(dsn, env["KAFKA_BROKERS"], env["TOPIC_RECORD_INGESTED_V2"],
                                  env["KAFKA_CONSUMER_GROUP"], stack.partitions, answers,
                                  interval_s=cfg.sample_interval_s)
                watch.start()
                started = time.time()
                load = _start_load(cfg, deployment.front.port, source, run.run_id, answers_path,
                                   scratch / "load.log")
                try:
                    ctx = FaultContext(stack, deployment, dsn, source, cfg.hold_s, cfg.crash_hold_s,
                                       cfg.recovery_timeout_s, report, loading=lambda: load.poll() is None)
                    faults, skipped = _faults(cfg, ctx, load, started)
                    if skipped:
                        report(f"warning: the load ended before {len(skipped)} fault(s): {', '.join(skipped)}")
                    load.wait(timeout=cfg.drain_timeout_s + cfg.count / cfg.rate)
                finally:
                    if load.poll() is None:
                        load.kill()
                load_s = time.time() - started
                watch.stop()
                watch.sample_once()
                answers.refresh()
                report(f"load done in {load_s:.0f} s: {answers.summary()}")
                results = _verdict(cfg, run, env, deployment, answers, watch, faults, skipped, source, load_s,
                                   report)
        finally:
            _ensure_stack_up(stack)
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    report(markdown(results))
    return results


def _verdict(cfg: ChaosConfig, run: ScratchRun, env: dict[str, str], deployment: Deployment, answers: AnswerLog,
             watch: LossWatch, faults: list[Fault], skipped: list[str], source: str, load_s: float,
             report: Callable[[str], None]) -> dict[str, Any]:
    dsn = env["DATABASE_URL"]
    ids = list(answers.accepted.values())
    report(f"drain: waiting for {len(ids):,} accepted records ...")
    first_drain = drain(dsn, ids, cfg.drain_timeout_s)
    admin, reader = token("chaos-operator", "admin"), token("chaos-reader", "read")
    responses: list[str] = []
    dlq = reprocess_dlq(deployment.front.port, admin, responses)
    second_drain = drain(dsn, ids, cfg.drain_timeout_s) if dlq["reprocessed"] else first_drain
    verdict = judge(dsn, env, answers.accepted, len(answers.conflicting))
    report("reconcile --repair ...")
    reconciled = reconcile(env, source, responses)

    report("privacy sweep ...")
    sweep = Sweep()
    sample = ids[:: max(1, len(ids) // 100)]
    linkage = read_responses(deployment.front.port, reader, [f"/records/{r}/linkage" for r in sample])
    sweep.search("query responses", read_responses(deployment.front.port, reader, [f"/records/{r}" for r in sample]))
    sweep.search("query responses", linkage)
    sweep.search("query responses", read_responses(deployment.front.port, reader, person_paths(linkage)[:50]))
    sweep.search("admin responses", responses)
    sweep.search("admin responses", read_responses(deployment.front.port, admin, [
        "/admin/dlq?limit=1000", "/admin/dlq/report"]))
    for name, server in deployment.servers().items():
        sweep.search(f"/metrics and /health/detailed of {name}",
                     read_responses(server.port, admin, ["/metrics", "/health/detailed"]))
    sweep.search("answers other than 202 (problem bodies)", answers.bodies)
    sweep.topics(env["KAFKA_BROKERS"], [env[k] for k in ("TOPIC_RECORD_INGESTED_V1", "TOPIC_RECORD_INGESTED_V2",
                                                          "KAFKA_DLQ_TOPIC_V1", "KAFKA_DLQ_TOPIC_V2")])
    sweep.database(dsn)
    sweep.logs([*deployment.logs(), answers.path.parent / "load.log"])
    raw_keys = [f"{source}/{r}.json" for r in sample[:20]]
    planted = sweep.raw_storage(env, raw_keys)

    kinds = Counter(f.kind for f in faults)
    ingests = answers.summary()
    passed = not (verdict["lost"] or verdict["duplicated"] or verdict["canonical_without_raw"]
                  or watch.lost_ever or sweep.hits or ingests["server_errors_other_than_503"]
                  or ingests["non_202_not_problem_json"] or not reconciled["clean_after_repair"]
                  or planted["objects_with_every_canary_class"] < len(raw_keys))
    return {
        "passed": passed,
        "run_id": run.run_id,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {k: (list(v) if isinstance(v, tuple) else v if isinstance(v, int | float) else str(v))
                   for k, v in asdict(cfg).items() if k != "extra"},
        "machine": machine(),
        "deployment": {name: s.roles for name, s in deployment.servers().items()},
        "load_s": round(load_s, 1),
        "ingests": ingests,
        "faults": {"by_kind": dict(sorted(kinds.items())), "total": len(faults), "skipped": skipped,
                   "schedule": [asdict(f) for f in faults]},
        "recovery_s": _recovery(faults),
        "during_run": watch.summary(),
        "drain": {"first": first_drain, "after_dlq_reprocess": second_drain},
        "dlq": dlq,
        "check": verdict,
        "reconcile": reconciled,
        "privacy": {**sweep.summary(), "canary_classes": len(CANARY_CLASSES), "raw_storage": planted},
        "unanswered_keys": answers.unanswered()[:20],
    }
