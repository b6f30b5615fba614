"""A full re-resolution of persons: ``exchange derive persons``, timed, when the CLI has it.

It runs as an operator runs it, in a process of its own with the run's environment. A CLI
whose ``derive`` has no ``persons`` data set refuses it as an argparse usage error (exit 2,
"invalid choice"): then there is nothing to time. Besides the command's wall time, the job's
own (``job_runs``, when it prints its ``job_id`` as the other derive jobs do) leaves out the
process's start.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

__all__ = ("Rederived", "derive")


@dataclass(frozen=True, slots=True)
class Rederived:
    seconds: float
    """Wall time of the command, the process's start included."""
    job_seconds: float | None
    """From the job's start to its end (``job_runs``); None when it printed no ``job_id``."""
    output: dict[str, Any]
    """The JSON it printed."""


async def _job_seconds(dsn: str, job_id: str) -> float | None:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT extract(epoch FROM ended_at - started_at)::float8 FROM job_runs WHERE job_run_id = $1::uuid",
            job_id)
    finally:
        await conn.close()
    return None if value is None else float(value)


def derive(dataset: str, stack_root: Path, env: Mapping[str, str], dsn: str, timeout_s: float) -> Rederived | None:
    """Run ``exchange derive <dataset>`` (``persons``); None when the CLI has no such data set."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "exchange.cli", "--stack-root", str(stack_root), "derive", dataset],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode == 2 and "invalid choice" in done.stderr and repr(dataset) in done.stderr:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"exchange derive {dataset} failed (exit {done.returncode}): {done.stderr.strip()[-600:]}")
    output = json.loads(done.stdout)
    job_id = output.get("job_id") if isinstance(output, dict) else None
    job_seconds = asyncio.run(_job_seconds(dsn, job_id)) if isinstance(job_id, str) else None
    return Rederived(seconds, job_seconds, output)
