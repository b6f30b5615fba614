"""``exchange serve`` as a real child process (for signals, kill -9 and split roles)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from exchange_stack._process import free_port


class ServeProcess:
    def __init__(
        self, env: Mapping[str, str], roles: str, log_dir: Path, *, name: str = "serve", port: int | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()  # a restarted server keeps its predecessor's port
        self.roles = roles
        self.args = tuple(args)
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self._env = {**os.environ, **env, "HTTP_PORT": str(self.port), "HTTP_HOST": "127.0.0.1"}
        self._env.setdefault("LOG_LEVEL", "INFO")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServeProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exchange.cli", "serve", f"--role={self.roles}", *self.args],
            env=self._env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        return self

    def wait_healthy(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"exchange serve exited with {self.proc.returncode}:\n{self.logs()[-3000:]}")
            try:
                return self.get("/healthz")[1]
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise AssertionError(f"exchange serve not healthy within {timeout}s:\n{self.logs()[-3000:]}")

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:  # noqa: S310 - loopback test server
                return resp.status, msgspec.json.decode(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, msgspec.json.decode(exc.read() or b"null")

    def get_text(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:  # noqa: S310 - loopback test server
            return resp.status, resp.read().decode()

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
