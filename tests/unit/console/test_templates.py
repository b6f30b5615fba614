"""Every console template renders, escapes what it shows, and keeps the accessibility basics the
browser test checks on the live pages: lang, one h1, ordered headings, a label for each control."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment, FileSystemLoader

import exchange.console
from exchange.console._text import register_filters
from exchange.ingest import Acceptance
from exchange.jobs import JobRun, JobSummary
from exchange.normalize import Attempt, Canonical, DeadLetter
from exchange.outbox import Delivery
from exchange.query import Journey

TEMPLATES = Path(exchange.console.__file__).parent / "templates"
NOW = dt.datetime(2026, 12, 5, 23, 0, tzinfo=dt.UTC)


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.lang: str | None = None
        self.headings: list[int] = []
        self.controls: list[tuple[str, str | None, str | None]] = []  # tag, id, aria-label
        self.labels: set[str] = set()
        self._button: list[str] | None = None
        self.empty_buttons = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        if len(tag) == 2 and tag[0] == "h" and tag[1].isdigit():
            self.headings.append(int(tag[1]))
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append((tag, a.get("id"), a.get("aria-label")))
        if tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        if tag == "button":
            self._button = []

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self.empty_buttons += 0 if "".join(self._button).strip() else 1
            self._button = None


def render(name: str, **context: Any) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    register_filters(env)
    base = {"operator": "ops-<b>", "csrf_token": "tok", "path": "/console/"}
    return env.get_template(name).render(**{**base, **context})


_JOB = JobRun("0193a3c4-0000-7000-8000-000000000001", "replay", "running", {"source": "s"},
              {"done": 3, "total": 10}, None, None, "2026-12-05T22:00:00.000000Z", None, "host:1:abc", None, 1)
_ENTRY = {"id": 7, "record_id": "0193a3c4-0000-7000-8000-000000000002", "status": "open", "failed_at": NOW,
          "error_stage": "fetch", "error_type": "RawObjectNotFound", "error_message": "raw object missing",
          "attempts": 1, "source_topic": "t", "dlq_topic": "t.dlq", "kafka_partition": 0, "kafka_offset": 5,
          "resolved_at": None, "resolution_reason": None,
          "ledger": [{"attempt_no": 1, "status": "failed", "started_at": NOW.isoformat(), "ended_at": None,
                      "error_stage": "fetch", "error_type": "RawObjectNotFound", "transient": False,
                      "error_message": "raw object missing"}], "stage_state": None}
PAGES: dict[str, dict[str, Any]] = {
    "login.html": {"operator": None, "login_token": "n", "next_path": "/console/", "error": "refused <x>"},
    "error.html": {"title": "Already done", "message": "nothing <done>", "signed_out": False},
    "overview.html": {"health": {"status": "degraded", "roles": ["admin"],
                                 "dependencies": {"database": {"status": "up", "latency_ms": 1.0},
                                                  "tokenizer": {"status": "down", "latency_ms": 2.0,
                                                                "error_type": "ConnectError"}},
                                 "tasks": {"normalizer": {"state": "waiting", "restarts": 0,
                                                          "last_error_type": None, "waiting_for": ["tokenizer"]}}},
                      "outbox": {"backlog": 3, "oldest_pending_age_s": 1.5}, "lag": {},
                      "dlq": [(("fetch", "RawObjectNotFound"), 2)], "dlq_total": 2,
                      "jobs": [JobSummary("replay", {"running": 1}, 3, 10, 0.5)], "refresh_s": 15},
    "dlq_list.html": {"entries": [_ENTRY], "filters": {"stage": "fetch", "error_type": None, "status": None},
                      "stages": ("fetch", "parse"), "statuses": ("open", "resolved"), "more": "?before=7"},
    "dlq_entry.html": {"entry": _ENTRY, "event": [("source", "s")], "notice": "Reprocessed"},
    "jobs.html": {"runs": [_JOB], "more": None},
    "job.html": {"job": _JOB, "bar": (3, 10), "refresh_s": 2},
    "records.html": {},
    "record.html": {"journey": Journey(
        "0193a3c4-0000-7000-8000-000000000002", "canonical",
        Acceptance(NOW, "partner-a", "src", "2", "canonicalized", "a" * 64, 120),
        [Delivery("t", NOW, NOW, 1)],
        [Attempt(1, "failed", "failed", "RawObjectNotFound", "fetch", False, NOW, NOW),
         Attempt(2, "succeeded", "inserted", None, None, None, NOW, NOW)],
        Canonical(NOW, NOW), [DeadLetter("RawObjectNotFound", "fetch", 1, NOW, "reprocessed", None)], 12.5)},
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_a_page_has_lang_one_h1_ordered_headings_and_a_name_for_every_control(name: str) -> None:
    html = render(name, **PAGES[name])
    page = Page()
    page.feed(html)
    assert page.lang == "en"
    assert page.headings.count(1) == 1
    assert page.headings[0] == 1
    assert all(b <= a + 1 for a, b in zip(page.headings, page.headings[1:], strict=False))
    unlabelled = [c for c in page.controls if c[2] is None and c[1] not in page.labels]
    assert unlabelled == []
    assert page.empty_buttons == 0


def test_what_a_page_shows_is_escaped() -> None:
    html = render("error.html", **PAGES["error.html"])
    assert "nothing &lt;done&gt;" in html
    assert "ops-&lt;b&gt;" in html


def test_every_template_is_covered() -> None:
    assert {p.name for p in TEMPLATES.glob("*.html")} - {"base.html"} == set(PAGES)


def test_a_running_job_reloads_itself_and_a_finished_one_does_not() -> None:
    assert '<meta http-equiv="refresh" content="2">' in render("job.html", **PAGES["job.html"])
    assert "http-equiv" not in render("job.html", **{**PAGES["job.html"], "refresh_s": None})
