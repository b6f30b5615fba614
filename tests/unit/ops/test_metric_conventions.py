"""Every metric follows Prometheus' naming rules and keeps its label values bounded, and the
gauges refreshed at scrape replace their series (a partition or a DLQ pair that went away goes)."""

from __future__ import annotations

import re

import pytest
from prometheus_client.metrics_core import Metric

from exchange.ops.metrics import E2E_ORIGINS, INGEST_OUTCOMES, NORMALIZER_OUTCOMES, Metrics

# The unit (or counted thing) a name ends with; plain 0/1 state gauges are listed by name.
_UNITS = ("_seconds", "_bytes", "_messages", "_events", "_entries", "_items", "_requests", "_runs", "_up",
          "_per_request")
_STATE_GAUGES = {"exchange_task_running", "exchange_task_waiting_for_dependency"}
# Unbounded (an id, a client, a source) or clashing with a label Prometheus sets on every target.
_FORBIDDEN_LABELS = {"record_id", "event_id", "correlation_id", "source", "client_id", "client", "key",
                     "idempotency_key", "job_id", "id", "patient_token", "person_id", "job", "instance"}


def _families() -> list[Metric]:
    return list(Metrics().registry.collect())


def test_names_carry_the_namespace_and_a_unit_and_only_counters_end_in_total() -> None:
    for family in _families():
        exposed = family.name + ("_total" if family.type == "counter" else "")
        assert re.fullmatch(r"exchange_[a-z0-9_]+", exposed), exposed
        if family.type == "counter":
            continue
        assert not exposed.endswith("_total"), f"{exposed}: _total is for counters"
        assert exposed.endswith(_UNITS) or exposed in _STATE_GAUGES, f"{exposed}: name its unit last"


def test_no_metric_has_an_unbounded_or_clashing_label() -> None:
    metrics = Metrics()
    declared = [set(getattr(collector, "_labelnames", ()))
                for collector in metrics.registry._collector_to_names]
    assert {"stage", "error_type"} in declared  # the walk sees the label names
    for labels in declared:
        assert not labels & _FORBIDDEN_LABELS, labels & _FORBIDDEN_LABELS


def test_known_label_values_exist_at_zero_before_anything_happens() -> None:
    registry = Metrics().registry
    for outcome in NORMALIZER_OUTCOMES:
        assert registry.get_sample_value("exchange_normalizer_records_total", {"outcome": outcome}) == 0
    for version in ("1", "2"):
        for ingest in INGEST_OUTCOMES:
            assert registry.get_sample_value("exchange_ingest_requests_total",
                                             {"version": version, "outcome": ingest}) == 0
    for origin in E2E_ORIGINS:
        assert registry.get_sample_value("exchange_e2e_latency_seconds_count", {"origin": origin}) == 0


def test_a_tracked_task_restart_counter_starts_at_zero() -> None:
    metrics = Metrics()
    metrics.track_task("normalizer")
    assert metrics.registry.get_sample_value("exchange_task_restarts_total", {"task": "normalizer"}) == 0


def test_consumer_lag_series_follow_the_partitions_owned_now() -> None:
    metrics = Metrics()
    metrics.set_consumer_lag({("t.v1", 0): 5, ("t.v1", 1): 0})
    metrics.set_consumer_lag({("t.v1", 1): 7})  # partition 0 revoked
    value = metrics.registry.get_sample_value
    assert value("exchange_consumer_lag_messages", {"topic": "t.v1", "partition": "0"}) is None
    assert value("exchange_consumer_lag_messages", {"topic": "t.v1", "partition": "1"}) == 7


def test_dlq_pairs_with_no_open_entry_left_disappear() -> None:
    metrics = Metrics()
    metrics.set_dlq_open({("fetch", "RawObjectNotFound"): 2, ("tokenize", "InvalidIdentifiers"): 1})
    metrics.set_dlq_open({("fetch", "RawObjectNotFound"): 1})
    value = metrics.registry.get_sample_value
    assert value("exchange_dlq_open_entries", {"stage": "fetch", "error_type": "RawObjectNotFound"}) == 1
    assert value("exchange_dlq_open_entries", {"stage": "tokenize", "error_type": "InvalidIdentifiers"}) is None


@pytest.mark.parametrize("up", [True, False])
def test_a_dependency_is_one_when_up_and_zero_when_down(up: bool) -> None:
    metrics = Metrics()
    metrics.set_dependencies({"database": up})
    assert metrics.registry.get_sample_value("exchange_dependency_up", {"dependency": "database"}) == float(up)
