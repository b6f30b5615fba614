"""The operator console in a real browser (Debian's chromium, driven by Playwright) against the
real application on the local stack, with the normalizer calling a tokenizer process of its own.

One operator's night: a wrong token is refused; they sign in by keyboard; the tokenizer goes
down and the overview says so; a record that waited for it has meanwhile lost its raw object and
lands in the DLQ when the tokenizer is back; the object is restored, the operator finds the
entry through the DLQ filters, reprocesses it by keyboard and watches the record's journey turn
canonical; they start a replay job and watch it finish; they sign out. Every page is checked for
the basics of accessibility (lang, one h1, ordered headings, a name for every control), nothing
is loaded from elsewhere, no page shows a patient identifier, and a screenshot of each page is
saved under the test's folder (its path is printed).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from exchange.adapters.migrations import upgrade_to_head
from exchange.adapters.objectstore import AiobotocoreObjectStore
from tests.support.app import TEST_JWT_SECRET, bearer, make_settings
from tests.support.db import create_database, drop_database, eventually, fetch, fetchval
from tests.support.process import ServeProcess

# Run in the page: what a screen reader and a keyboard user need at the least.
_A11Y = """() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push("html has no lang");
  const headings = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")];
  const h1s = headings.filter(h => h.tagName === "H1").length;
  if (h1s !== 1) problems.push(`${h1s} h1 elements`);
  let level = 0;
  for (const h of headings) {
    const next = Number(h.tagName[1]);
    if (level === 0 && next !== 1) problems.push(`first heading is ${h.tagName}`);
    if (next > level + 1 && level !== 0) problems.push(`${h.tagName} "${h.textContent.trim()}" skips a level`);
    level = next;
  }
  for (const el of document.querySelectorAll("input, select, textarea, button")) {
    if (el.type === "hidden") continue;
    const named = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label") ||
      el.getAttribute("aria-labelledby") || (el.tagName === "BUTTON" && el.textContent.trim());
    if (!named) problems.push(`${el.tagName.toLowerCase()}#${el.id || "?"} has no accessible name`);
  }
  return problems;
}"""


class Visit:
    """Every page the operator saw: screenshots, accessibility problems, the HTML (for the PHI search)."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.html: list[str] = []
        self.count = 0

    async def check(self, name: str) -> None:
        self.count += 1
        await self.page.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"), full_page=True)
        problems = await self.page.evaluate(_A11Y)
        assert problems == [], f"{name}: {problems}"
        self.html.append(await self.page.content())


async def tab_to(page: Page, selector: str, *, limit: int = 80) -> None:
    """Tab from the top of the page until ``selector`` has the focus: it is reachable by keyboard."""
    await page.locator("body").focus()
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("(s) => document.activeElement === document.querySelector(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def patient_of(unique: str) -> dict[str, str]:
    """A patient of this test's own: sharing the canary patient's linkage tokens would join this
    test's records to the person other tests build from that patient, and change their linkage."""
    return {"given_name": f"Consolegiven{unique}", "family_name": f"Consolefamily{unique}", "dob": "1950-05-06",
            "ssn": f"{int(unique[:8], 16) % 10**9:09d}"}


def v2_body(source: str, patient: dict[str, str], canaries: dict[str, str], visit: int) -> dict[str, Any]:
    # The canaries ride in the payload (the raw object only), with the patient's identifiers.
    return {"source": source, "record_kind": "encounter", "schema_hint": "partnerB.v1", "patient": patient,
            "payload": {"notes": canaries, "visit": visit}}


@pytest.fixture
def own_db(stack_env: dict[str, str], unique: str) -> Iterator[dict[str, str]]:
    """The stack's environment on a database of this test's own: its admin process takes over the
    stale jobs it finds when it starts (ADR 0009), and in the suite's database those are other
    tests' -- a persons rebuild among them refits the model later tests link with."""
    name = f"console_{unique}"
    dsn = asyncio.run(create_database(stack_env["DATABASE_URL"], name))
    upgrade_to_head(dsn, Path(__file__).resolve().parents[2] / "migrations")
    try:
        yield {**stack_env, "DATABASE_URL": dsn}
    finally:
        asyncio.run(drop_database(stack_env["DATABASE_URL"], name))


@pytest.mark.timeout(600)
async def test_an_operator_fixes_a_dead_letter_and_replays_a_source_in_a_real_browser(
    own_db: dict[str, str], isolated_kafka: dict[str, str], unique: str, canaries: dict[str, str], tmp_path: Path
) -> None:
    stack_env = own_db
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: `make chromium` installs Debian's package"  # a failure, never a skip
    shots = tmp_path / "console-screenshots"
    shots.mkdir()
    print(f"\nconsole screenshots: {shots}")
    env = {**stack_env, **isolated_kafka, "JWT_SECRET": TEST_JWT_SECRET, "ENV": "test", "BACKOFF_BASE_MS": "100"}
    settings = make_settings(stack_env, **isolated_kafka, ENV="test")
    dsn = stack_env["DATABASE_URL"]
    source = f"console-{unique}"
    patient = patient_of(unique)
    tokenizer = ServeProcess(env, "tokenizer", tmp_path, name="tokenizer").start()
    app = ServeProcess({**env, "TOKENIZER_URL": tokenizer.url}, "ingest,publisher,normalizer,admin,query", tmp_path,
                       name="app")
    restarted: ServeProcess | None = None
    base = f"http://localhost:{app.port}"  # a secure context for the browser: the Secure cookie is kept
    store = AiobotocoreObjectStore(settings.object_store)
    try:
        tokenizer.wait_healthy()
        app.start().wait_healthy()
        sender = bearer(settings, sub=f"partner-{unique}", scopes="ingest:write")
        async with httpx.AsyncClient(base_url=app.url, timeout=10) as api:

            async def ingest(visit: int) -> str:
                r = await api.post("/v2/ingest", json=v2_body(source, patient, canaries, visit),
                                   headers={**sender, "Idempotency-Key": f"{unique}-{visit}"})
                assert r.status_code == 202, r.text
                return str(r.json()["record_id"])

            async def canonical(record_id: str) -> bool:
                return bool(await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE record_id = $1::uuid",
                                           record_id) == 1)

            first = await ingest(1)
            await eventually(lambda: canonical(first), timeout=60, interval=0.3)

            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=chromium, headless=True)
                context = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
                page = await context.new_page()
                elsewhere: list[str] = []
                page.on("request", lambda request: None if request.url.startswith(base) else elsewhere.append(
                    request.url))
                visit = Visit(page, shots)

                # A wrong token is refused, on the page, with the reason.
                r = await page.goto("/console/")
                assert r is not None
                assert page.url.startswith(f"{base}/console/login")
                await visit.check("login")
                await page.fill("#token", "dev")
                async with page.expect_navigation() as refused:
                    await page.click("button:has-text('Sign in')")
                answer = await refused.value
                assert answer is not None
                assert answer.status == 401
                await expect(page.get_by_role("alert")).to_contain_text(
                    "That token was refused: the dev token is accepted only when ENV=local")
                await visit.check("login-refused")

                # Sign in by keyboard alone.
                admin = bearer(settings, sub="ops-night", scopes="admin")["Authorization"].removeprefix("Bearer ")
                await tab_to(page, "#token")
                await page.keyboard.type(admin)
                async with page.expect_navigation():
                    await page.keyboard.press("Enter")
                await expect(page.locator("h1")).to_have_text("Pipeline overview")
                await expect(page.get_by_text("Signed in as")).to_contain_text("ops-night")
                await visit.check("overview")

                # The tokenizer goes down: a new record waits for it, and the overview says so.
                tokenizer.signal(signal.SIGKILL)
                tokenizer.wait(timeout=10)
                second = await ingest(2)

                async def shows_the_wait() -> bool:
                    await page.reload()
                    task = await page.locator("#task-normalizer").inner_text()
                    dependency = await page.locator("#dependency-tokenizer").inner_text()
                    return "waiting" in task and "tokenizer" in task and "down" in dependency

                await eventually(shows_the_wait, timeout=90, interval=1.0)
                await visit.check("overview-tokenizer-down")

                # Meanwhile its raw object is lost; the tokenizer comes back; the record is dead-lettered.
                key = f"{source}/{second}.json"
                backup = await store.get(key)
                await store.delete(key)
                restarted = ServeProcess(env, "tokenizer", tmp_path, name="tokenizer-again", port=tokenizer.port)
                restarted.start().wait_healthy()

                async def dead_lettered() -> bool:
                    n = await fetchval(dsn, "SELECT count(*) FROM dlq_events WHERE record_id = $1::uuid AND "
                                            "status = 'open'", second)
                    return bool(n == 1)

                await eventually(dead_lettered, timeout=90, interval=0.5)

                # The operator finds it through the DLQ filters.
                await page.click("nav >> text=DLQ")
                await page.select_option("#stage", "fetch")
                await page.select_option("#status", "open")
                await page.fill("#error_type", "RawObjectNotFound")
                await page.click("button:has-text('Filter')")
                row = page.locator("tr", has_text=second)
                await expect(row).to_have_count(1)
                await visit.check("dlq-list")
                await row.locator("a").first.click()
                await expect(page.locator("h1")).to_contain_text("DLQ entry #")
                ledger = await page.locator("table").inner_text()
                assert "TokenizerUnavailable" in ledger  # the wait, charged to nobody
                assert "RawObjectNotFound" in ledger
                await visit.check("dlq-entry")

                # The object is restored; the operator reprocesses by keyboard.
                await store.put(key, backup)
                await tab_to(page, "#reprocess")
                async with page.expect_navigation():
                    await page.keyboard.press("Enter")
                await expect(page.get_by_role("status").first).to_contain_text("Reprocessed")
                await visit.check("dlq-reprocessed")

                # The record's journey, which reloads itself, turns canonical.
                await page.click(f"a[href='/console/records/{second}']")
                await expect(page.locator("#record-stage")).to_contain_text("canonical", timeout=90_000)
                await visit.check("record-canonical")
                assert await canonical(second)

                # The search finds the other record by id.
                await page.click("nav >> text=Records")
                await visit.check("record-search")
                await tab_to(page, "#record_id")
                await page.keyboard.type(first)
                async with page.expect_navigation():
                    await page.keyboard.press("Enter")
                await expect(page.locator("#record-stage")).to_contain_text("canonical")

                # A replay of the source, watched to its end.
                await page.click("nav >> text=Jobs")
                await visit.check("jobs")
                await page.fill("#replay-source", source)
                await page.click("#start-replay")
                await expect(page.locator("h1")).to_have_text("Job: replay")
                await expect(page.locator("#job-status")).to_contain_text("succeeded", timeout=120_000)
                await visit.check("job-succeeded")
                job_id = page.url.rsplit("/", 1)[1]

                await page.click("button:has-text('Sign out')")
                await expect(page.get_by_role("status")).to_contain_text("You are signed out")
                await visit.check("signed-out")
                await browser.close()

        assert elsewhere == []  # nothing loaded from the network
        # The canaries long enough not to occur by chance in a page of hex digests and uuids.
        planted = [value for value in [*canaries.values(), *patient.values()] if len(value) >= 8]
        for html in visit.html:
            for value in planted:
                assert value not in html
        job = await fetch(dsn, "SELECT status, result FROM job_runs WHERE job_run_id = $1::uuid", job_id)
        assert job[0]["status"] == "succeeded"
        audit = await fetch(dsn, "SELECT action FROM audit_log WHERE actor = 'ops-night' ORDER BY id")
        actions = [a["action"] for a in audit]
        for action in ("console.login", "dlq.list", "dlq.inspect", "dlq.reprocess", "job.replay.start",
                       "console.logout"):
            assert action in actions
        assert await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE source = $1", source) == 2
        assert sorted(p.name for p in shots.iterdir()) == [f"{n:02d}-{name}.png" for n, name in enumerate(
            ["login", "login-refused", "overview", "overview-tokenizer-down", "dlq-list", "dlq-entry",
             "dlq-reprocessed", "record-canonical", "record-search", "jobs", "job-succeeded", "signed-out"], 1)]
    finally:
        await store.close()
        app.stop()
        tokenizer.stop()
        if restarted is not None:
            restarted.stop()
