"""Shared fixtures. Integration and e2e tests get one local stack per session on free ports,
so `make test` works on a fresh clone and next to a running `make run`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange.adapters.kafka import ensure_topics
from exchange.adapters.migrations import upgrade_to_head
from exchange_stack import Stack, StackPorts

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        if parts[0] == "integration":
            item.add_marker(pytest.mark.integration)
        elif parts[0] == "e2e":
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    # The Kafka jars are resolved once and shared with the developer's stack.
    st = Stack(root, cache_dir=REPO / ".exchange" / "cache", ports=StackPorts.free())
    try:
        st.up()
        upgrade_to_head(st.postgres.url, REPO / "migrations")
        yield st
    finally:
        st.down()


@pytest.fixture(scope="session")
def stack_env(stack: Stack) -> dict[str, str]:
    return stack.env()


@pytest.fixture
def unique() -> str:
    """A fresh id for sources and keys, so tests never depend on shared state."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def canaries() -> dict[str, str]:
    """One marker per HIPAA identifier class (tests/data/phi-canaries.json), flattened."""
    data = json.loads((DATA / "phi-canaries.json").read_text())
    flat: dict[str, str] = {}
    for group in data["canaries"].values():
        flat.update(group)
    return flat


@pytest.fixture
def isolated_kafka(stack: Stack, unique: str) -> dict[str, str]:
    """Fresh topics and consumer group for one test, as env overrides: fault tests must not
    consume (or dead-letter) other tests' events."""
    v1, v2 = f"t{unique}.record.ingested.v1", f"t{unique}.record.ingested.v2"
    topics = {
        "TOPIC_RECORD_INGESTED_V1": v1,
        "TOPIC_RECORD_INGESTED_V2": v2,
        "KAFKA_DLQ_TOPIC_V1": f"{v1}.dlq",
        "KAFKA_DLQ_TOPIC_V2": f"{v2}.dlq",
    }
    ensure_topics(stack.kafka.brokers, topics.values(), partitions=3)
    return {**topics, "KAFKA_TOPICS": f"{v1},{v2}", "KAFKA_CONSUMER_GROUP": f"g{unique}"}
