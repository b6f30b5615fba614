"""The console on the real stack: sign-in, the pages, the actions and their audit rows, and every
kind of bad input (gone entries, double submits, ended sessions, forged forms) answered with a
page that says so, the right status, and nothing changed."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from exchange.console import SessionCodec
from exchange.settings import Settings
from tests.integration.console.conftest import (
    SESSION_COOKIE,
    SESSION_SECRET,
    alert,
    hidden,
    open_dlq_entry,
    sign_in,
)
from tests.support.app import bearer
from tests.support.db import eventually, fetch, fetchval

pytestmark = pytest.mark.timeout(120)


def _dsn(settings: Settings) -> str:
    return settings.database.dsn


async def _entry_state(settings: Settings, entry: int) -> dict[str, Any]:
    rows = await fetch(_dsn(settings), "SELECT status, resolved_by, resolution_reason, resolved_at FROM dlq_events "
                                       "WHERE id = $1", entry)
    return dict(rows[0]) if rows else {}


async def _outbox_rows(settings: Settings, record_id: str) -> int:
    return int(await fetchval(_dsn(settings), "SELECT count(*) FROM outbox_events WHERE key = $1", record_id))


async def _audit(settings: Settings, entity_id: str) -> list[tuple[str, str, str]]:
    rows = await fetch(_dsn(settings), "SELECT actor, action, status FROM audit_log WHERE entity_id = $1 ORDER BY id",
                       entity_id)
    return [(r["actor"], r["action"], r["status"]) for r in rows]


async def test_sign_in_opens_a_strict_httponly_secure_session_and_is_audited(
    console: AsyncTestClient[Any], console_settings: Settings
) -> None:
    form = await console.get("/console/login")
    assert form.status_code == 200
    assert '<html lang="en">' in form.text
    token = bearer(console_settings, sub="ops-dana", scopes="admin")["Authorization"].removeprefix("Bearer ")
    r = await console.post("/console/login", data={"token": token, "login_token": hidden(form.text, "login_token"),
                                                   "next": "/console/dlq"}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/dlq"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= attributes
    max_age = next(int(a.split("=")[1]) for a in attributes if a.startswith("max-age="))
    assert 0 < max_age <= 300  # the test token expires in 300 s: the session does not outlive it
    page = await console.get("/console/dlq")
    assert page.status_code == 200
    assert "Signed in as <strong>ops-dana</strong>" in page.text
    for header in ("content-security-policy", "x-frame-options", "cache-control"):
        assert header in page.headers
    logins = await fetch(_dsn(console_settings), "SELECT action, status FROM audit_log WHERE actor = 'ops-dana' "
                                                 "AND action = 'console.login'")
    assert [(r["action"], r["status"]) for r in logins] == [("console.login", "ok")]


@pytest.mark.parametrize(("token", "status", "reason"), [
    ("dev", 401, "the dev token is accepted only when ENV=local"),
    ("not-a-jwt", 401, "malformed token"),
    ("", 401, "missing bearer token"),
    ("READ-SCOPE", 403, "token lacks the required scope admin"),
])
async def test_a_wrong_token_is_refused_on_the_login_page_and_opens_no_session(
    console: AsyncTestClient[Any], console_settings: Settings, token: str, status: int, reason: str
) -> None:
    if token == "READ-SCOPE":
        token = bearer(console_settings, scopes="read")["Authorization"].removeprefix("Bearer ")
    form = await console.get("/console/login")
    r = await console.post("/console/login", data={"token": token, "login_token": hidden(form.text, "login_token")},
                           follow_redirects=False)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/html")
    assert alert(r.text) == f"That token was refused: {reason}."
    assert not any(c.startswith(SESSION_COOKIE + "=") and "Max-Age=0" not in c
                   for c in r.headers.get_list("set-cookie"))
    after = await console.get("/console/", follow_redirects=False)
    assert after.status_code == 303
    assert after.headers["location"].startswith("/console/login")


async def test_a_login_form_not_from_the_login_page_is_refused(console: AsyncTestClient[Any],
                                                               console_settings: Settings) -> None:
    token = bearer(console_settings, scopes="admin")["Authorization"].removeprefix("Bearer ")
    r = await console.post("/console/login", data={"token": token, "login_token": "forged"}, follow_redirects=False)
    assert r.status_code == 403
    assert "CSRF" in alert(r.text)
    assert (await console.get("/console/", follow_redirects=False)).status_code == 303


async def test_without_a_session_a_page_sends_to_the_login_and_an_action_is_refused_with_401(
    console: AsyncTestClient[Any], console_settings: Settings
) -> None:
    entry, _ = await open_dlq_entry(_dsn(console_settings), console_settings.kafka.topic_v1)
    for path in ("/console/", "/console/dlq", f"/console/dlq/{entry}", "/console/jobs", "/console/records"):
        r = await console.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/console/login?next=")
    r = await console.post(f"/console/dlq/{entry}/reprocess", data={"csrf_token": "x"})
    assert r.status_code == 401
    assert "Nothing was done" in alert(r.text)
    assert (await _entry_state(console_settings, entry))["status"] == "open"


async def test_an_expired_session_is_sent_to_sign_in_again_and_its_action_is_not_done(
    console: AsyncTestClient[Any], console_settings: Settings
) -> None:
    entry, record_id = await open_dlq_entry(_dsn(console_settings), console_settings.kafka.topic_v1)
    past = SessionCodec(SESSION_SECRET.encode(), 3600, clock=lambda: time.time() - 7200)
    cookie, session = past.issue("ops-erin")
    console.cookies.set(SESSION_COOKIE, cookie, domain="testserver.local")
    r = await console.get(f"/console/dlq/{entry}", follow_redirects=False)
    assert r.status_code == 303
    assert "ended=1" in r.headers["location"]
    login = await console.get(r.headers["location"])
    assert "Your session has ended" in login.text
    r = await console.post(f"/console/dlq/{entry}/reprocess", data={"csrf_token": past.csrf_token(session)})
    assert r.status_code == 401
    assert "session has ended" in alert(r.text)
    assert (await _entry_state(console_settings, entry))["status"] == "open"
    assert await _outbox_rows(console_settings, record_id) == 0
    assert await _audit(console_settings, str(entry)) == []


async def test_a_forged_form_without_the_csrf_token_is_refused_and_changes_nothing(
    console: AsyncTestClient[Any], console_settings: Settings
) -> None:
    entry, record_id = await open_dlq_entry(_dsn(console_settings), console_settings.kafka.topic_v1)
    csrf = await sign_in(console, console_settings)
    for data in ({}, {"csrf_token": ""}, {"csrf_token": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}):
        r = await console.post(f"/console/dlq/{entry}/resolve", data={**data, "reason": "forged"})
        assert r.status_code == 403
        assert "Nothing was done" in alert(r.text)
        r = await console.post(f"/console/dlq/{entry}/reprocess", data=data)
        assert r.status_code == 403
        r = await console.post("/console/jobs/replay", data={**data, "source": "forged-src"})
        assert r.status_code == 403
    assert (await _entry_state(console_settings, entry))["status"] == "open"
    assert await _outbox_rows(console_settings, record_id) == 0
    assert await fetchval(_dsn(console_settings), "SELECT count(*) FROM job_runs WHERE params->>'source' = "
                                                  "'forged-src'") == 0
    r = await console.post("/console/logout", data={})
    assert r.status_code == 403
    assert (await console.get("/console/")).status_code == 200  # still signed in


async def test_reprocess_reemits_once_and_a_second_submit_is_a_409_that_changes_nothing(
    console: AsyncTestClient[Any], console_settings: Settings
) -> None:
    entry, record_id = await open_dlq_entry(_dsn(console_settings), console_settings.kafka.topic_v1)
    csrf = await sign_in(console, console_settings, sub="ops-frank")
    page = await console.get(f"/console/dlq/{entry}")
    assert page.status_code == 200
    assert "ConsoleTestMissing" in page.text
    assert f"console-src/{record_id}.json" in page.text
    r = await console.post(f"/console/dlq/{entry}/reprocess", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    done = await console.get(r.headers["location"])
    assert "Reprocessed: the original event was re-emitted" in done.text
    assert "no action is open" in done.text
    again = await console.post(f"/console/dlq/{entry}/reprocess", data={"csrf_token": csrf})
    assert again.status_code == 409
    assert alert(again.text) == (f"DLQ entry {entry} is reprocessed now (submitted twice, or another operator acted "
                                 "first). Nothing was done again.")
    assert (await _entry_state(console_settings, entry))["status"] == "reprocessed"
    assert await _outbox_rows(console_settings, record_id) == 1
    topic = await fetchval(_dsn(console_settings), "SELECT topic FROM outbox_events WHERE key = $1", record_id)
    assert topic == console_settings.kafka.topic_v1
    assert await _audit(console_settings, str(entry)) == [
        ("ops-frank", "dlq.inspect", "ok"), ("ops-frank", "dlq.reprocess", "ok"), ("ops-frank", "dlq.inspect", "ok")]
    await fetch(_dsn(console_settings), "DELETE FROM outbox_events WHERE key = $1", record_id)


async def test_resolve_keeps_the_reason_and_a_second_resolve_is_a_409_that_changes_nothing(
    console: AsyncTestClient[Any], console_settings: Settings
) -> None:
    entry, _ = await open_dlq_entry(_dsn(console_settings), console_settings.kafka.topic_v1)
    csrf = await sign_in(console, console_settings, sub="ops-gail")
    r = await console.post(f"/console/dlq/{entry}/resolve", data={"csrf_token": csrf, "reason": "partner resent it"},
                           follow_redirects=False)
    assert r.status_code == 303
    first = await _entry_state(console_settings, entry)
    assert (first["status"], first["resolved_by"], first["resolution_reason"]) == (
        "resolved", "ops-gail", "partner resent it")
    again = await console.post(f"/console/dlq/{entry}/resolve", data={"csrf_token": csrf, "reason": "second try"})
    assert again.status_code == 409
    assert "is resolved now" in alert(again.text)
    assert await _entry_state(console_settings, entry) == first
    reprocess = await console.post(f"/console/dlq/{entry}/reprocess", data={"csrf_token": csrf})
    assert reprocess.status_code == 409
    actions = [a for a in await _audit(console_settings, str(entry)) if a[1] != "dlq.inspect"]
    assert actions == [("ops-gail", "dlq.resolve", "ok")]


async def test_an_empty_or_oversized_reason_is_a_400_naming_the_reason(
    console: AsyncTestClient[Any], console_settings: Settings
) -> None:
    entry, _ = await open_dlq_entry(_dsn(console_settings), console_settings.kafka.topic_v1)
    csrf = await sign_in(console, console_settings)
    for reason in ("", "   ", "x" * 501, "nul\x00inside"):
        r = await console.post(f"/console/dlq/{entry}/resolve", data={"csrf_token": csrf, "reason": reason})
        assert r.status_code == 400, reason
        assert alert(r.text).startswith("reason:")
    assert (await _entry_state(console_settings, entry))["status"] == "open"


async def test_an_action_on_an_entry_that_no_longer_exists_is_a_404_page(
    console: AsyncTestClient[Any], console_settings: Settings
) -> None:
    entry, record_id = await open_dlq_entry(_dsn(console_settings), console_settings.kafka.topic_v1)
    csrf = await sign_in(console, console_settings)
    assert (await console.get(f"/console/dlq/{entry}")).status_code == 200
    await fetch(_dsn(console_settings), "DELETE FROM dlq_events WHERE id = $1", entry)
    for action, data in (("reprocess", {}), ("resolve", {"reason": "gone"})):
        r = await console.post(f"/console/dlq/{entry}/{action}", data={"csrf_token": csrf, **data})
        assert r.status_code == 404
        assert alert(r.text) == f"no DLQ entry {entry}: it may have been removed. Nothing was done."
    assert (await console.get(f"/console/dlq/{entry}")).status_code == 404
    assert await _outbox_rows(console_settings, record_id) == 0
    for bad in ("abc", "0", "-4", str(2**63), "1e3"):
        r = await console.get(f"/console/dlq/{bad}")
        assert r.status_code == 400, bad
        assert r.headers["content-type"].startswith("text/html")
        r = await console.post(f"/console/dlq/{bad}/reprocess", data={"csrf_token": csrf})
        assert r.status_code == 400, bad


async def test_the_dlq_list_filters_by_stage_error_type_and_status_and_pages(
    console: AsyncTestClient[Any], console_settings: Settings
) -> None:
    kind = f"ConsoleTest{uuid.uuid4().hex[:8]}"
    ids = [(await open_dlq_entry(_dsn(console_settings), console_settings.kafka.topic_v1, error_type=kind))[0]
           for _ in range(3)]
    await fetch(_dsn(console_settings), "INSERT INTO dlq_events (record_id, event_version, dlq_topic, source_topic, "
                                        "original_event, error_type, error_message, error_stage, attempts, failed_at) "
                                        "SELECT gen_random_uuid(), '1', 'd', 's', '{}', $1, 'm', 'parse', 1, "
                                        "now() - make_interval(secs => n) FROM generate_series(1, 55) n", kind)
    await sign_in(console, console_settings)
    r = await console.get("/console/dlq", params={"error_type": kind, "stage": "fetch", "status": "open"})
    assert r.status_code == 200
    assert all(f'href="/console/dlq/{i}"' in r.text for i in ids)
    assert r.text.count(f"<td>{kind}</td>") == 3
    parse = await console.get("/console/dlq", params={"error_type": kind, "stage": "parse"})
    assert parse.text.count(f"<td>{kind}</td>") == 50
    assert "Older entries" in parse.text
    more = parse.text.split('href="/console/dlq?')[-1].split('"')[0].replace("&amp;", "&")
    rest = await console.get(f"/console/dlq?{more}")
    assert rest.text.count(f"<td>{kind}</td>") == 5
    assert "Older entries" not in rest.text
    for params, field in (({"stage": "nowhere"}, "stage"), ({"status": "closed"}, "status"),
                          ({"error_type": "x" * 201}, "error_type"), ({"before": "abc"}, "before")):
        bad = await console.get("/console/dlq", params=params)
        assert bad.status_code == 400
        assert alert(bad.text).startswith(f"{field}:")


async def test_a_job_started_from_the_console_runs_to_its_end_and_is_audited(
    console: AsyncTestClient[Any], console_settings: Settings, unique: str
) -> None:
    csrf = await sign_in(console, console_settings, sub="ops-hana")
    r = await console.post("/console/jobs/verify", data={"csrf_token": csrf, "source": f"empty-{unique}"},
                           follow_redirects=False)
    assert r.status_code == 303
    job_path = r.headers["location"]
    job_id = job_path.rsplit("/", 1)[1]

    async def finished() -> bool:
        page = await console.get(job_path)
        return "Status: <strong>succeeded</strong>" in page.text

    await eventually(finished, timeout=60, interval=0.5)
    assert '<meta http-equiv="refresh"' not in (await console.get(job_path)).text
    listing = await console.get("/console/jobs")
    assert f'href="/console/jobs/{job_id}"' in listing.text
    assert await _audit(console_settings, job_id) == [("ops-hana", "job.verify.start", "accepted")]
    for kind, data, field in (("replay", {"source": "../x"}, "source"), ("replay", {"source": "s", "limit": "0"},
                              "limit"), ("reconcile", {}, "source"), ("derive", {"dataset": "all"}, "dataset")):
        bad = await console.post(f"/console/jobs/{kind}", data={"csrf_token": csrf, **data})
        assert bad.status_code == 400
        assert alert(bad.text).startswith(f"{field}:")
    unknown = await console.post("/console/jobs/format-disk", data={"csrf_token": csrf})
    assert unknown.status_code == 404
    assert (await console.get(f"/console/jobs/{uuid.uuid4()}")).status_code == 404
    assert (await console.get("/console/jobs/not-a-uuid")).status_code == 400


async def test_record_search_finds_a_journey_and_refuses_bad_or_unknown_ids(
    console: AsyncTestClient[Any], console_settings: Settings
) -> None:
    await sign_in(console, console_settings)
    r = await console.get("/console/records", params={"record_id": "not-a-uuid"})
    assert r.status_code == 400
    assert alert(r.text).startswith("record_id:")
    unknown = str(uuid.uuid4())
    r = await console.get("/console/records", params={"record_id": unknown})
    assert r.status_code == 404
    assert alert(r.text) == f"no record {unknown}. Nothing was done."


async def test_the_overview_shows_dependencies_tasks_backlog_dlq_and_jobs(
    console: AsyncTestClient[Any], console_settings: Settings
) -> None:
    await sign_in(console, console_settings)
    r = await console.get("/console/")
    assert r.status_code == 200
    for heading in ("Dependencies", "Background tasks", "Backlog and lag", "Open DLQ entries",
                    "Jobs in the last 24 hours"):
        assert f"<h2>{heading}</h2>" in r.text
    assert '<th scope="row">database</th><td>up</td>' in r.text
    assert '<th scope="row">job-sweeper</th><td>running</td>' in r.text
    assert "Outbox events not yet published" in r.text


async def test_sign_out_ends_the_session_even_for_a_copy_of_its_cookie(
    console: AsyncTestClient[Any], console_settings: Settings
) -> None:
    csrf = await sign_in(console, console_settings, sub="ops-ivan")
    cookie = console.cookies.get(SESSION_COOKIE)
    assert cookie
    r = await console.post("/console/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert "signed_out=1" in r.headers["location"]
    console.cookies.set(SESSION_COOKIE, cookie, domain="testserver.local")  # a copy kept by someone
    again = await console.get("/console/", follow_redirects=False)
    assert again.status_code == 303
    assert "ended=1" in again.headers["location"]
    actions = await fetch(_dsn(console_settings), "SELECT action FROM audit_log WHERE actor = 'ops-ivan' ORDER BY id")
    assert [a["action"] for a in actions] == ["console.login", "console.logout"]


async def test_the_console_is_on_the_admin_role_only(stack_env: dict[str, str]) -> None:
    from exchange.roles import Role
    from tests.support.app import make_settings, running_app

    settings = make_settings(stack_env, ENV="test")
    async with running_app(settings, frozenset({Role.QUERY}), base_url="https://testserver.local") as client:
        r = await client.get("/console/login")
    assert r.status_code == 404
