"""``Jobs.recent``: the console's job list, newest first, paged by a job id."""

from __future__ import annotations

import pytest

from exchange.adapters.postgres import Database
from exchange.jobs import Jobs

pytestmark = pytest.mark.timeout(60)


async def test_recent_runs_come_newest_first_and_page_on_from_a_job(db: Database, unique: str) -> None:
    jobs = Jobs(db)
    created = []
    for n in range(3):
        job = await jobs.create(f"recent-{unique}", {"n": n})
        await jobs.finish(job, status="succeeded", result={"n": n})
        created.append(job.job_run_id)
    newest = await jobs.recent(1000)
    mine = [j.job_run_id for j in newest if j.job_name == f"recent-{unique}"]
    assert mine == created[::-1]
    first_page = await jobs.recent(2)
    assert [j.job_run_id for j in first_page][:2] == created[::-1][:2]
    after = await jobs.recent(1000, before=created[1])
    assert created[0] in [j.job_run_id for j in after]
    assert not {created[1], created[2]} & {j.job_run_id for j in after}
    assert await jobs.recent(5, before="not-a-uuid") == []
