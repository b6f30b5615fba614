"""``exchange serve`` in a process of its own, for one benchmark phase, evaluation or chaos run.

The server runs the installed CLI with the run's environment (its database, bucket, topics),
on a free loopback port (or a given one: a server the chaos run killed comes back on its
predecessor's); its log goes to a file beside the run's scratch files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from exchange_stack import Stack
from exchange_stack._process import free_port, pid_listens

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
    """``exchange serve --role=<roles>`` with ``env``; ready once ``/healthz`` answers (and, for
    one of several processes sharing a port with ``--reuse-port``, once its own socket listens).
    A killed server started again (``start``) keeps its port and appends to its log."""

    def __init__(self, env: dict[str, str], roles: str, log_dir: Path, *, port: int | None = None,
                 args: Sequence[str] = (), tag: str = "") -> None:
        self.port = port or free_port()
        self.env = {**os.environ, **env, "HTTP_PORT": str(self.port), "HTTP_HOST": "127.0.0.1",
                    "LOG_LEVEL": "INFO"}
        self.log = log_dir / f"serve-{roles.replace(',', '_')}-{self.port}{tag}.log"
        self.roles = roles
        self.args = tuple(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.rss_peak_mb = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> Server:
        """Start the process and wait until ``/healthz`` answers; RuntimeError if it does not."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "exchange.cli", "serve", f"--role={self.roles}", *self.args],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    pass
                if "--reuse-port" not in self.args or pid_listens(self.proc.pid, self.port):
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"server did not start; see {self.log}")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no drain, no offsets committed on the way out."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def __enter__(self) -> Server:
        return self.start()

    def with_stack(self, stack: Stack) -> dict[str, int | None]:
        """The CPU meter's components: this server and the stack's servers."""
        assert self.proc is not None
        return {"server": self.proc.pid, **stack_pids(stack)}

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return
        self.rss_peak_mb = _rss_peak_mb(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
