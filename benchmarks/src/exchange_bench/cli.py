"""``exchange bench``: every benchmark of the local stack in one run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ("register",)

DEFAULT_OUTPUT = Path("benchmarks/results/latest.json")


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def register(sub: Any) -> None:
    """Add ``bench`` to the ``exchange`` command's subparsers (entry point ``exchange.commands``)."""
    bench = sub.add_parser("bench", help="benchmarks on the local stack -> benchmarks/results/latest.json")
    bench.add_argument("--concurrency", type=int, default=32)
    bench.add_argument("--duration", type=float, default=20.0, help="seconds of closed-loop ingest load")
    bench.add_argument("--e2e-rate", type=float, default=100.0)
    bench.add_argument("--e2e-duration", type=float, default=20.0)
    bench.add_argument("--drain-rows", type=int, default=50_000)
    bench.add_argument("--normalizer-records", type=int, default=10_000)
    bench.add_argument("--rounds", type=_at_least_one, default=3,
                       help="ingest, split ingest and floor alternate this many times within --duration")
    bench.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                       help=f"where the JSON goes (default {DEFAULT_OUTPUT}, relative to the working folder)")
    bench.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from exchange_bench.runner import BenchConfig, run_bench  # noqa: PLC0415 - `exchange --help` stays light

    run_bench(BenchConfig(
        stack_root=args.stack_root, concurrency=args.concurrency, duration_s=args.duration,
        e2e_rate=args.e2e_rate, e2e_duration_s=args.e2e_duration, drain_rows=args.drain_rows,
        normalizer_records=args.normalizer_records, rounds=args.rounds, output=args.output,
    ))
    return 0
