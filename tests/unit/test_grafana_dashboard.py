"""The provisioned dashboard (deploy/grafana/dashboards/exchange.json) is one Grafana can lay out:
unique panel ids, panels within the 24-column grid and not on top of each other, every query with
its own refId. Which metrics its queries name is checked against a live app
(tests/integration/ops/test_operator_view.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "exchange.json"


def _dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_dashboard_has_a_stable_uid_and_unique_panel_ids() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "exchange-operator"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_panels_fit_the_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in _dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_panel_but_a_row_queries_prometheus_with_distinct_ref_ids() -> None:
    for panel in _dashboard()["panels"]:
        if panel["type"] == "row":
            continue
        targets = panel["targets"]
        assert targets, panel["title"]
        assert all(t["expr"].strip() for t in targets)
        assert len({t["refId"] for t in targets}) == len(targets)
