"""`exchange serve` as a real process: role selection, graceful SIGTERM, bad settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exchange_stack._process import pid_listens, wait_until
from tests.support.app import DEV, TEST_JWT_SECRET
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


def _post_fresh(port: int, path: str, body: dict[str, object], key: str) -> int:
    """One request on a connection of its own (urllib opens one a call): the kernel picks the
    process that answers it afresh each time."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
        headers={**DEV, "Idempotency-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback test server
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _accepted_counts_seen(port: int, scrapes: int) -> set[int]:
    """The accepted ingests (``exchange_ingest_requests_total{outcome="accepted"}``) each scrape of
    ``/metrics`` reported (each scrape on a fresh connection, so from whichever process the kernel chose)."""
    from prometheus_client.parser import text_string_to_metric_families

    seen: set[int] = set()
    for _ in range(scrapes):
        text = urllib_text(f"http://127.0.0.1:{port}/metrics")
        seen.add(round(sum(sample.value for family in text_string_to_metric_families(text)
                           for sample in family.samples
                           if sample.name == "exchange_ingest_requests_total"
                           and sample.labels.get("outcome") == "accepted")))
    return seen


def test_two_processes_share_one_port_and_one_killed_leaves_it_serving(
    env: dict[str, str], tmp_path: Path, unique: str
) -> None:
    first = ServeProcess(env, "ingest", tmp_path, name="a", args=["--reuse-port"]).start()
    second = ServeProcess(env, "ingest", tmp_path, name="b", port=first.port, args=["--reuse-port"]).start()
    try:
        first.wait_healthy()
        second.wait_healthy()  # answered by either: each process's own listening socket tells
        assert first.proc is not None and second.proc is not None
        pids = (first.proc.pid, second.proc.pid)
        assert wait_until(lambda: all(pid_listens(pid, first.port) for pid in pids), timeout=30)
        # A server started without the option cannot take the port from them.
        intruder = subprocess.run([sys.executable, "-m", "exchange.cli", "serve", "--role=ingest"],
                                  env={**os.environ, **env, "HTTP_PORT": str(first.port), "HTTP_HOST": "127.0.0.1"},
                                  capture_output=True, text=True, timeout=60, check=False)
        assert intruder.returncode != 0
        body = {"source": f"rp-{unique}", "record_type": "encounter",
                "patient": {"first_name": "Ana", "last_name": "Lee", "dob": "1980-02-03"}, "payload": {}}
        sent = 41  # odd: the two processes' shares cannot be equal, so two counts mean two processes
        statuses = [_post_fresh(first.port, "/v1/ingest", body, f"{unique}-{n}") for n in range(sent)]
        assert statuses == [202] * sent
        # Each process counts what it accepted: two different counts, adding up to every request.
        seen = _accepted_counts_seen(first.port, scrapes=30)
        assert len(seen) == 2 and sum(seen) == sent and min(seen) > 0, seen

        first.signal(signal.SIGKILL)
        first.wait(timeout=10)
        after = [_post_fresh(first.port, "/v1/ingest", body, f"{unique}-after-{n}") for n in range(20)]
        assert after == [202] * 20  # the survivor takes every new connection
        assert len(_accepted_counts_seen(first.port, scrapes=5)) == 1
    finally:
        first.stop()
        second.stop()
