"""`exchange serve` as a real process: role selection, graceful SIGTERM, bad settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.app import TEST_JWT_SECRET
from tests.support.process import ServeProcess


@pytest.fixture
def env(stack_env: dict[str, str], isolated_kafka: dict[str, str]) -> dict[str, str]:
    return {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET}


def test_role_normalizer_starts_only_that_role(env: dict[str, str], tmp_path: Path) -> None:
    proc = ServeProcess({**env, "TOKENIZER_URL": "http://127.0.0.1:9"}, "normalizer", tmp_path).start()
    try:
        health = proc.wait_healthy()
        assert health["roles"] == ["normalizer"]
        assert set(health["tasks"]) == {"normalizer"}
        status, _ = proc.get("/tokenize")
        assert status in (404, 405)
        assert proc.get("/v1/ingest")[0] in (404, 405)
        status, detailed = proc.get("/health/detailed")
        # Its tokenizer is remote, so health probes it too: nothing listens there.
        assert set(detailed["dependencies"]) == {"database", "object_store", "kafka", "tokenizer", "consumer"}
        assert detailed["dependencies"]["tokenizer"]["status"] == "down"
        assert detailed["dependencies"]["consumer"]["lag_messages"] >= 0
        assert status == 503
    finally:
        proc.stop()


def test_role_list_mounts_only_the_chosen_routes(env: dict[str, str], tmp_path: Path) -> None:
    proc = ServeProcess(env, "ingest,tokenizer", tmp_path).start()
    try:
        health = proc.wait_healthy()
        assert health["roles"] == ["ingest", "tokenizer"]
        assert set(health["tasks"]) == {"idempotency-janitor"}
        metrics = urllib_text(proc.url + "/metrics")
        assert "exchange_http_requests_total" in metrics
    finally:
        proc.stop()


def urllib_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
        return str(resp.read().decode())


def test_sigterm_drains_and_exits_within_ten_seconds(env: dict[str, str], tmp_path: Path) -> None:
    proc = ServeProcess(env, "all", tmp_path).start()
    proc.wait_healthy()
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    code = proc.wait(timeout=15)
    elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < 10, f"shutdown took {elapsed:.1f}s"
    logs = proc.logs()
    assert "runtime stopped" in logs
    assert "did not drain in time" not in logs


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HTTP_PORT", "eighty"), ("DATABASE_URL", "mysql://nope"), ("MAX_ATTEMPTS", "-1")],
)
def test_a_bad_setting_stops_the_process_with_one_line_naming_it(
    env: dict[str, str], variable: str, value: str
) -> None:
    bad = {**os.environ, **env, variable: value}
    out = subprocess.run([sys.executable, "-m", "exchange.cli", "serve"], env=bad, capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert variable in lines[0]
    assert "s3cret" not in out.stderr


def test_the_normalizer_without_tokenizer_needs_tokenizer_url(env: dict[str, str]) -> None:
    bad = {**os.environ, **env}
    bad.pop("TOKENIZER_URL", None)
    out = subprocess.run([sys.executable, "-m", "exchange.cli", "serve", "--role=normalizer,publisher"],
                         env={**bad, "TOKENIZER_URL": ""}, capture_output=True, text=True, timeout=60, check=False)
    # With the tokenizer role absent and no URL, the process refuses to start.
    assert out.returncode == 2
    assert "TOKENIZER_URL" in out.stderr


def test_an_unknown_role_is_refused(env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-m", "exchange.cli", "serve", "--role=ingest,bogus"],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2
    assert "bogus" in out.stderr
