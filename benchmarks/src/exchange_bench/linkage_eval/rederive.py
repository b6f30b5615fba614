"""A full re-resolution of persons: ``exchange derive persons``, timed, when the CLI has it.

It runs as an operator runs it, in a process of its own with the run's environment. A CLI
whose ``derive`` has no ``persons`` data set refuses it as an argparse usage error (exit 2,
"invalid choice"): then there is nothing to time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ("Rederived", "derive_persons")


@dataclass(frozen=True, slots=True)
class Rederived:
    seconds: float
    """Wall time of the command, the process's start included."""
    output: dict[str, Any]
    """The JSON it printed."""


def derive_persons(stack_root: Path, env: Mapping[str, str], timeout_s: float) -> Rederived | None:
    """Run ``exchange derive persons``; None when the CLI has no such data set."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "exchange.cli", "--stack-root", str(stack_root), "derive", "persons"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode == 2 and "invalid choice" in done.stderr and "persons" in done.stderr:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"exchange derive persons failed (exit {done.returncode}): {done.stderr.strip()[-600:]}")
    return Rederived(seconds, json.loads(done.stdout))
