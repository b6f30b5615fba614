"""What the floor and core load processes share: the counted window and the command line.

Both drive ingest work without HTTP from ``--concurrency`` workers; one driver means the
two rates (the floor is the denominator of ``ingest_ratio``) are counted the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from exchange.runtime.eventloop import install_uvloop
from exchange_bench._http import mark_window

__all__ = ("BareRun", "drive", "main")

# run(env_file, source, topic, concurrency, duration, warmup) -> the result written to --out
BareRun = Callable[[str, str, str, int, float, float], Coroutine[Any, Any, dict[str, float]]]


async def drive(one: Callable[[int], Awaitable[object]], concurrency: int, duration: float,
                warmup: float) -> tuple[int, float]:
    """``one(n)`` back to back from ``concurrency`` workers (n counts up across them) for
    ``warmup`` uncounted seconds, then ``duration`` counted ones. Returns the operations
    begun in the counted window and its length in seconds."""
    counter = itertools.count()
    measure_from = time.perf_counter() + warmup  # the same uncounted warm-up as the service gets
    deadline = measure_from + duration
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            await one(next(counter))
            if began >= measure_from:
                done += 1

    await asyncio.gather(mark_window(measure_from, deadline), *(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - measure_from


def main(run: BareRun) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=0.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    install_uvloop()
    result = asyncio.run(run(args.env_file, args.source, args.topic, args.concurrency, args.duration, args.warmup))
    Path(args.out).write_text(json.dumps(result))
