"""The alert rules (deploy/prometheus/alerts.yml) load in Prometheus and behave as their unit
tests (alerts.test.yml) say, checked by promtool itself; every rule links a runbook section that
exists in docs/operations.md, and every alert has a test where it fires.

promtool comes from Debian's prometheus package (`make promtool`, a step of `make test`). Without
it this test fails: the rules would otherwise ship unchecked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"


def _promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    local = ROOT / ".exchange" / "tools" / "bin" / "promtool"
    if not found and local.exists():
        found = str(local)
    if not found:
        pytest.fail("promtool is missing: run `make promtool` (Debian's prometheus package, promtool only)")
    return found


def _run(*args: str) -> str:
    done = subprocess.run([_promtool(), *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)}


def test_promtool_accepts_the_rules() -> None:
    out = _run("check", "rules", str(RULES))
    assert f"SUCCESS: {len(_rules())} rules found" in out


def test_the_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in _run("test", "rules", str(RULE_TESTS))


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section_that_exists() -> None:
    anchors = _anchors(OPERATIONS.read_text())
    for rule in _rules():
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in anchors, f"docs/operations.md has no section for {rule['alert']}"


def test_every_alert_has_a_unit_test_where_it_fires() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    assert {rule["alert"] for rule in _rules()} == firing


def test_the_rules_are_loaded_by_the_prometheus_config_and_target_down_watches_every_scrape_job() -> None:
    config = yaml.safe_load((RULES.parent / "prometheus.yml").read_text())
    assert [(RULES.parent / f).resolve() for f in config["rule_files"]] == [RULES]
    (target_down,) = [rule for rule in _rules() if rule["alert"] == "ExchangeTargetDown"]
    match = re.search(r'job=~"([^"]+)"', target_down["expr"])
    assert match
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert jobs
    assert all(re.fullmatch(match.group(1), job) for job in jobs), jobs
