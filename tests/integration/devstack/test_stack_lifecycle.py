"""The stack manager itself, on a dedicated stack (the session stack stays untouched)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from exchange.events import PLATFORM_TOPICS
from exchange.settings import load_settings, read_env_file
from exchange_stack import Stack, StackError, StackPorts

REPO = Path(__file__).resolve().parents[3]


def _consume_one(brokers: str, topic: str, timeout: float = 30.0) -> bytes | None:
    consumer = Consumer(
        {"bootstrap.servers": brokers, "group.id": f"t-{uuid.uuid4()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    try:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                value: bytes = msg.value()
                return value
        return None
    finally:
        consumer.close()


def test_up_stop_start_kafka_keeps_a_message_and_down_stops_everything(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "lifecycle", cache_dir=REPO / ".exchange" / "cache", ports=StackPorts.free())
    try:
        env = stack.up(partitions=3)  # KAFKA_PARTITIONS
        assert all(s.state == "running" for s in stack.status())
        metadata = AdminClient({"bootstrap.servers": stack.kafka.brokers}).list_topics(timeout=10)
        assert {t: len(metadata.topics[t].partitions) for t in PLATFORM_TOPICS} == dict.fromkeys(PLATFORM_TOPICS, 3)
        assert env["KAFKA_PARTITIONS"] == "3"
        # stack.env points any tool at the stack, and the app accepts it as settings.
        assert read_env_file(stack.env_file) == env
        settings = load_settings(env)
        assert settings.kafka.brokers == stack.kafka.brokers

        marker = f"kept-{uuid.uuid4()}".encode()
        producer = Producer({"bootstrap.servers": stack.kafka.brokers, "acks": "all"})
        producer.produce("record.ingested.v1", value=marker, key=b"k")
        assert producer.flush(30) == 0

        stack.stop("kafka")
        assert {s.name: s.state for s in stack.status()}["kafka"] == "stopped"
        stack.start("kafka")
        assert {s.name: s.state for s in stack.status()}["kafka"] == "running"
        assert _consume_one(stack.kafka.brokers, "record.ingested.v1") == marker

        # Ports are remembered: a new manager on the same folder finds the same stack.
        again = Stack(stack.root)
        assert again.ports == stack.ports
    finally:
        stack.down()
    assert all(s.state == "stopped" for s in stack.status())


def test_status_json_from_the_cli_reports_each_service(stack: Stack) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "exchange.cli", "--stack-root", str(stack.root), "stack", "status", "--json"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    data = json.loads(out.stdout)
    assert set(data) == {"postgres", "kafka", "s3"}
    assert all(v["state"] == "running" for v in data.values())
    assert data["kafka"]["address"] == stack.kafka.brokers


def test_unknown_service_is_refused(stack: Stack) -> None:
    with pytest.raises(StackError, match="unknown service"):
        stack.stop("redis")


def test_missing_java_fails_at_once_saying_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from exchange_stack import Stack, StackPorts\n"
        f"s = Stack(Path({str(tmp_path / 'nojava')!r}), cache_dir=Path({str(tmp_path / 'nocache')!r}),"
        " ports=StackPorts.free())\n"
        "s.up()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    env["PATH"] = str(Path(sys.executable).parent)  # python and weed, but no java/mvn
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                         check=False)
    assert out.returncode != 0
    assert "Java" in out.stderr
    assert "docker compose up" in out.stderr
