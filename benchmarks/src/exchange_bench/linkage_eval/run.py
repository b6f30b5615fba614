"""``exchange eval-linkage``: Febrl4 end to end through the running service.

On a database, bucket and topics of the run's own (``ScratchRun``), one ``exchange serve`` with
every role: each record is sent to ``POST /v2/ingest``, the run waits until every accepted
record is canonical, reads each one's seed token (``GET /records/{id}``) and person
(``GET /records/{id}/linkage``, when the service has it), times ``exchange derive persons``
(when the CLI has it) and reads the persons again. Scores, counts and times go to
``benchmarks/results/linkage.json`` and a markdown table to the report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exchange.settings import load_settings
from exchange_bench.linkage_eval.dataset import Febrl4, load
from exchange_bench.linkage_eval.ingest import Ingested, Outgoing, ingest
from exchange_bench.linkage_eval.readback import has_linkage_route, read_field, wait_canonical
from exchange_bench.linkage_eval.rederive import derive
from exchange_bench.linkage_eval.report import counts, markdown, scores
from exchange_bench.machine import machine
from exchange_bench.scratch import ScratchRun, token
from exchange_bench.server import Server
from exchange_stack import Stack

__all__ = ("EvalConfig", "run_eval")

RECORD_PATH = "/records/{record_id}"
LINKAGE_PATH = "/records/{record_id}/linkage"


@dataclass(frozen=True, slots=True)
class EvalConfig:
    stack_root: Path
    limit: int | None = None
    """Febrl4's first this many true pairs, both records of each; None: all 5,000."""
    concurrency: int = 32
    """Requests in flight, each on a kept-alive connection of its own."""
    seed: int = 0
    """Arrival order: the records shuffled with this seed (the two of a pair arrive apart)."""
    timeout_s: float = 1800.0
    """For the pipeline to make every accepted record canonical, and for the re-resolution."""
    output: Path = Path("benchmarks/results/linkage.json")
    """Relative paths are taken from the working folder (`make eval-linkage` runs in the repository)."""

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")


def _outgoing(data: Febrl4, run_id: str, seed: int) -> list[Outgoing]:
    items = [Outgoing(r.rec_id, f"febrl4-{run_id}-{r.rec_id}", json.dumps({
        "source": f"febrl-{r.file}-{run_id}", "record_kind": "encounter", "schema_hint": "partnerA.v1",
        "patient": r.patient, "payload": {"evaluation": "febrl4"},
    }).encode()) for r in data.records]
    random.Random(seed).shuffle(items)
    return items


def run_eval(cfg: EvalConfig, report: Callable[[str], None] = print, *, stack: Stack | None = None) -> dict[str, Any]:
    """The evaluation on ``stack`` (default: the developer stack at ``cfg.stack_root``, started)."""
    data = load(cfg.limit, today=dt.datetime.now(dt.UTC).date())
    if stack is None:
        stack = Stack(cfg.stack_root)
        stack.up()
    scratch = Path(tempfile.mkdtemp(prefix="exchange-eval-linkage-"))
    with ScratchRun.open(stack, report) as run, Server(run.env, "all", scratch) as server:
        dsn = load_settings(run.env).database.dsn
        report(f"ingest: {len(data.records):,} Febrl4 records, {cfg.concurrency} in flight ...")
        sent: Ingested = asyncio.run(ingest(server.port, token("eval-linkage", "ingest:write"),
                                            _outgoing(data, run.run_id, cfg.seed), cfg.concurrency))
        accepted = [a.record_id for a in sent.answers.values() if a.record_id is not None]
        report(f"pipeline: waiting for {len(accepted):,} canonical records ...")
        pipeline = asyncio.run(wait_canonical(dsn, accepted, cfg.timeout_s))
        reader = token("eval-linkage", "read")
        started = time.perf_counter()
        seed = asyncio.run(read_field(server.port, reader, accepted, RECORD_PATH, "patient_token", cfg.concurrency))
        read_s = time.perf_counter() - started
        linkage_route = has_linkage_route(server.port)
        persons = after = None
        if linkage_route:
            report("persons: reading each record's linkage ...")
            persons = asyncio.run(read_field(server.port, reader, accepted, LINKAGE_PATH, "person_id",
                                             cfg.concurrency))
        report("re-resolution: exchange derive persons ...")
        rederived = derive("persons", stack.root, run.env, dsn, cfg.timeout_s)
        if rederived is not None and linkage_route:
            after = asyncio.run(read_field(server.port, reader, accepted, LINKAGE_PATH, "person_id",
                                           cfg.concurrency))
        database = "own" if run.own_database else "shared"
        run_id = run.run_id
    last = pipeline.last_canonical_at
    run_s = max(last - sent.started_at, 1e-3) if last is not None else None
    results: dict[str, Any] = {
        "run_id": run_id,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "database": database,
        "config": {k: str(v) for k, v in asdict(cfg).items()},
        "machine": machine(),
        "linkage_route": linkage_route,
        "derive_persons": rederived is not None,
        "counts": {
            **counts(data, sent.answers),
            "canonical": pipeline.canonical,
            "dead_lettered": pipeline.dead_lettered,
            "read_back": len(seed.values),
            "read_failures": {str(s): n for s, n in sorted(seed.failures.items())},
            "persons_read_back": None if persons is None else sum(v is not None for v in persons.values.values()),
        },
        "times": {
            "ingest_s": round(sent.ended_at - sent.started_at, 3),
            "run_s": None if run_s is None else round(run_s, 3),
            "records_per_s": None if run_s is None else round(len(accepted) / run_s, 1),
            "read_s": round(read_s, 3),
            "rederive_s": None if rederived is None else round(rederived.seconds, 3),
            "rederive_job_s": None if rederived is None or rederived.job_seconds is None
            else round(rederived.job_seconds, 3),
        },
        "seed_token": scores(data, sent.answers, seed.values),
        "persons": None if persons is None else scores(data, sent.answers, persons.values),
        "persons_after_rederive": None if after is None else scores(data, sent.answers, after.values),
        "rederive_output": None if rederived is None else rederived.output,
    }
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    report(markdown(results))
    return results
