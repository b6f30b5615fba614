"""The original tokenizer's rules in Go (main.go), built and driven by the tokenize tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ("GoTokenizer", "build", "tables")

SOURCE = Path(__file__).with_name("main.go")


def build(out_dir: Path) -> Path | None:
    """``go build`` main.go into ``out_dir``; None when this machine has no Go toolchain.

    Standard library only: no module, no network (GOPROXY=off, GOTOOLCHAIN=local).
    """
    go = shutil.which("go")
    if go is None:
        return None
    binary = out_dir / "gotokenizer"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOFLAGS": "", "CGO_ENABLED": "0"}
    subprocess.run([go, "build", "-o", str(binary), str(SOURCE)], check=True, cwd=out_dir, env=env,
                   capture_output=True, timeout=240)
    return binary


@dataclass
class GoTokenizer:
    """One long-lived Go process: a batch of identifiers in, a batch of results out (one JSON line each)."""

    process: subprocess.Popen[str]

    @classmethod
    def start(cls, binary: Path, key: bytes) -> GoTokenizer:
        process = subprocess.Popen([str(binary), "-key", key.decode()], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, encoding="utf-8")
        return cls(process)

    def canonicalize(self, batch: list[dict[str, str | None]]) -> list[dict[str, Any]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(batch) + "\n")
        self.process.stdin.flush()
        results: list[dict[str, Any]] = json.loads(self.process.stdout.readline())
        return results

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)
        self.process.stdout.close()


def tables(binary: Path) -> dict[str, Any]:
    """Go's unicode.Version, every (code point, unicode.ToLower) that differs, every unicode.IsSpace."""
    out = subprocess.run([str(binary), "-table"], check=True, capture_output=True, text=True, timeout=60)
    result: dict[str, Any] = json.loads(out.stdout)
    return result
