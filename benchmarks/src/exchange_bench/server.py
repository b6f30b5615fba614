"""``exchange serve`` in a process of its own, for one benchmark phase or evaluation run.

The server runs the installed CLI with the run's environment (its database, bucket, topics),
on a free loopback port; its log goes to a file beside the run's scratch files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from exchange_stack import Stack
from exchange_stack._process import free_port

__all__ = ("Server", "stack_pids")


def stack_pids(stack: Stack) -> dict[str, int | None]:
    """The process id of each of the stack's servers (None: not running)."""
    return {service.name: service.pid for service in stack.status()}


def _rss_peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Server:
    """``exchange serve --role=<roles>`` with ``env``; ready once ``/healthz`` answers."""

    def __init__(self, env: dict[str, str], roles: str, log_dir: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "HTTP_PORT": str(self.port), "HTTP_HOST": "127.0.0.1",
                    "LOG_LEVEL": "INFO"}
        self.log = log_dir / f"serve-{roles.replace(',', '_')}-{self.port}.log"
        self.roles = roles
        self.proc: subprocess.Popen[bytes] | None = None
        self.rss_peak_mb = 0.0

    def __enter__(self) -> Server:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "exchange.cli", "serve", f"--role={self.roles}"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"server did not start; see {self.log}")

    def with_stack(self, stack: Stack) -> dict[str, int | None]:
        """The CPU meter's components: this server and the stack's servers."""
        assert self.proc is not None
        return {"server": self.proc.pid, **stack_pids(stack)}

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.rss_peak_mb = _rss_peak_mb(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
