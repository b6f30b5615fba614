"""``exchange bench`` (every benchmark of the local stack in one run), ``exchange
eval-linkage`` (Febrl4 end to end through the running service, scored pairwise), ``exchange
chaos`` (faults under steady load, checked afterwards) and ``exchange soak`` (a long steady load,
what the process holds sampled)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ("register",)

DEFAULT_OUTPUT = Path("benchmarks/results/latest.json")
DEFAULT_EVAL_OUTPUT = Path("benchmarks/results/linkage.json")
DEFAULT_CHAOS_OUTPUT = Path("benchmarks/results/chaos.json")
DEFAULT_SOAK_OUTPUT = Path("benchmarks/results/soak.json")
FEBRL4_PAIRS = 5000


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def _pairs(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= FEBRL4_PAIRS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {FEBRL4_PAIRS}, not {text!r}")
    return int(text)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"must be above 0 and below 1e6, not {text!r}")
    return value


def _kinds(text: str) -> tuple[str, ...]:
    from exchange_bench.chaos.faults import FAULT_KINDS  # noqa: PLC0415 - `exchange --help` stays light

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"a comma list of {', '.join(FAULT_KINDS)}; unknown: {unknown}")
    return kinds


def register(sub: Any) -> None:
    """Add ``bench``, ``eval-linkage``, ``chaos`` and ``soak`` to the ``exchange`` command's subparsers (entry point
    ``exchange.commands``)."""
    bench = sub.add_parser("bench", help="benchmarks on the local stack -> benchmarks/results/latest.json")
    bench.add_argument("--concurrency", type=int, default=32)
    bench.add_argument("--duration", type=float, default=20.0, help="seconds of closed-loop ingest load")
    bench.add_argument("--e2e-rate", type=float, default=100.0)
    bench.add_argument("--e2e-duration", type=float, default=20.0)
    bench.add_argument("--drain-rows", type=int, default=50_000)
    bench.add_argument("--normalizer-records", type=int, default=10_000)
    bench.add_argument("--scaling-records", type=int, default=10_000,
                       help="records of each normalizer scale-out phase (1, 2, 3 processes) and of the kill")
    bench.add_argument("--rounds", type=_at_least_one, default=3,
                       help="ingest, split ingest and floor alternate this many times within --duration")
    bench.add_argument("--query-rows", type=_at_least_one, default=1_000_000,
                       help="canonical rows the query phase generates in SQL (default 1,000,000)")
    bench.add_argument("--query-duration", type=float, default=20.0,
                       help="seconds of REST and GraphQL page load, shared by their rounds")
    bench.add_argument("--only", choices=("query", "normalizers"), default=None,
                       help="run this phase alone and merge its numbers into --output")
    bench.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                       help=f"where the JSON goes (default {DEFAULT_OUTPUT}, relative to the working folder)")
    bench.set_defaults(func=run)

    ev = sub.add_parser("eval-linkage", help="Febrl4 end to end through the service, scored pairwise "
                        "-> benchmarks/results/linkage.json")
    ev.add_argument("--limit", type=_pairs, default=None,
                    help=f"Febrl4's first N true pairs, both records of each (default all {FEBRL4_PAIRS:,})")
    ev.add_argument("--concurrency", type=_at_least_one, default=32, help="requests in flight (default 32)")
    ev.add_argument("--seed", type=int, default=0, help="the records' arrival order is shuffled with it (default 0)")
    ev.add_argument("--timeout", type=float, default=1800.0,
                    help="seconds the pipeline, and the re-resolution, may take (default 1800)")
    ev.add_argument("--output", type=Path, default=DEFAULT_EVAL_OUTPUT,
                    help=f"where the JSON goes (default {DEFAULT_EVAL_OUTPUT}, relative to the working folder)")
    ev.set_defaults(func=run_eval_linkage)

    ch = sub.add_parser("chaos", help="a split deployment under steady load while real faults run, then checked "
                        "-> benchmarks/results/chaos.json")
    ch.add_argument("--count", type=_at_least_one, default=10_000, help="records sent (default 10,000)")
    ch.add_argument("--rate", type=_positive, default=25.0, help="records started a second (default 25)")
    ch.add_argument("--rounds", type=_at_least_one, default=3, help="each fault kind this many times (default 3)")
    ch.add_argument("--faults", type=_kinds, default=None,
                    help="comma list of fault kinds (default all: serve_kill, kafka, s3, postgres, tokenizer, "
                    "crash_after_put, normalizer_kill)")
    ch.add_argument("--hold", type=_positive, default=8.0, help="seconds an outage lasts (default 8)")
    ch.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the first fault (default 10)")
    ch.add_argument("--output", type=Path, default=DEFAULT_CHAOS_OUTPUT,
                    help=f"where the JSON goes (default {DEFAULT_CHAOS_OUTPUT}, relative to the working folder)")
    ch.set_defaults(func=run_chaos)

    so = sub.add_parser("soak", help="steady load at half the measured capacity, all roles in one process; "
                        "RSS, connections, descriptors and backlog sampled -> benchmarks/results/soak.json")
    so.add_argument("--duration", type=_positive, default=1800.0, help="seconds of steady load (default 1800)")
    so.add_argument("--rate", type=_positive, default=None,
                    help="records a second (default: half the capacity measured by a burst first)")
    so.add_argument("--capacity-records", type=_at_least_one, default=4000,
                    help="records of the closed-loop burst that measures capacity (default 4,000)")
    so.add_argument("--interval", type=_positive, default=5.0, help="seconds between samples (default 5)")
    so.add_argument("--output", type=Path, default=DEFAULT_SOAK_OUTPUT,
                    help=f"where the JSON goes (default {DEFAULT_SOAK_OUTPUT}, relative to the working folder)")
    so.set_defaults(func=run_soak)


def run(args: argparse.Namespace) -> int:
    from exchange_bench.runner import BenchConfig, run_bench  # noqa: PLC0415 - `exchange --help` stays light

    if args.only == "query":
        from exchange_bench.query import run_query_bench  # noqa: PLC0415 - as above
        from exchange_stack import Stack  # noqa: PLC0415 - as above

        stack = Stack(args.stack_root)
        stack.up()
        run_query_bench(stack, rows=args.query_rows, duration_s=args.query_duration, output=args.output)
        return 0
    if args.only == "normalizers":
        from exchange.settings import load_settings  # noqa: PLC0415 - as above
        from exchange_bench.normalizers import run_normalizer_bench  # noqa: PLC0415 - as above
        from exchange_bench.runner import _prepublish  # noqa: PLC0415 - as above
        from exchange_stack import Stack  # noqa: PLC0415 - as above

        stack = Stack(args.stack_root)
        stack.up()
        run_normalizer_bench(stack, records=args.normalizer_records, scaling_records=args.scaling_records,
                             concurrency=load_settings(stack.env()).pipeline.normalizer_concurrency,
                             output=args.output, prepublish=_prepublish)
        return 0
    run_bench(BenchConfig(
        stack_root=args.stack_root, concurrency=args.concurrency, duration_s=args.duration,
        e2e_rate=args.e2e_rate, e2e_duration_s=args.e2e_duration, drain_rows=args.drain_rows,
        normalizer_records=args.normalizer_records, scaling_records=args.scaling_records, rounds=args.rounds,
        output=args.output, query_rows=args.query_rows, query_duration_s=args.query_duration,
    ))
    return 0


def run_eval_linkage(args: argparse.Namespace) -> int:
    from exchange_bench.linkage_eval import EvalConfig, run_eval  # noqa: PLC0415 - `exchange --help` stays light

    run_eval(EvalConfig(stack_root=args.stack_root, limit=args.limit, concurrency=args.concurrency, seed=args.seed,
                        timeout_s=args.timeout, output=args.output))
    return 0


def run_chaos(args: argparse.Namespace) -> int:
    """Exit 1 when the checker found anything (lost, duplicated, a 500, a leak ...)."""
    from exchange_bench.chaos import ChaosConfig, run_chaos  # noqa: PLC0415 - `exchange --help` stays light

    chosen: dict[str, Any] = {} if args.faults is None else {"kinds": args.faults}
    results = run_chaos(ChaosConfig(stack_root=args.stack_root, count=args.count, rate=args.rate, rounds=args.rounds,
                                    hold_s=args.hold, warmup_s=args.warmup, output=args.output, **chosen))
    return 0 if results["passed"] else 1


def run_soak(args: argparse.Namespace) -> int:
    """Exit 1 when a series grew past its limit, a task restarted or a record was not normalized."""
    from exchange_bench.soak import SoakConfig, run_soak  # noqa: PLC0415 - `exchange --help` stays light

    results = run_soak(SoakConfig(stack_root=args.stack_root, duration_s=args.duration, rate=args.rate,
                                  capacity_records=args.capacity_records, sample_interval_s=args.interval,
                                  output=args.output))
    return 0 if results["passed"] else 1
