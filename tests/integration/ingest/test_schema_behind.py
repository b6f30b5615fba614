"""New code on a database not yet migrated: a clean 503 naming the database, nothing written,
and the same request accepted once ``exchange migrate`` has run (never a 500)."""

from __future__ import annotations

import asyncio

from exchange.adapters.migrations import upgrade_to, upgrade_to_head
from exchange.roles import Role
from tests.conftest import REPO
from tests.integration.ingest._support import PROBLEM_JSON, body_for, new_key, post_ingest
from tests.support.app import DEV, make_settings, running_app
from tests.support.db import create_database, drop_database, fetchval


async def test_a_database_one_revision_behind_answers_503_and_the_retry_is_accepted_after_migrate(
    stack_env: dict[str, str], unique: str
) -> None:
    name = f"behind_{unique}".replace("-", "_")
    dsn = await create_database(stack_env["DATABASE_URL"], name)
    try:
        # Revision 0005 gave the manifest the client's id, which ingest now writes.
        await asyncio.to_thread(upgrade_to, dsn, "0004", REPO / "migrations")
        settings = make_settings(stack_env, DATABASE_URL=dsn)
        source, key = f"behind-{unique}", new_key("behind")
        async with running_app(settings, frozenset({Role.INGEST})) as client:
            refused = await post_ingest(client, 1, body_for(1, source), key=key, auth=DEV)
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"].startswith(PROBLEM_JSON)
            assert refused.json()["dependency"] == "database"
            assert await fetchval(dsn, "SELECT count(*) FROM outbox_events") == 0
            assert await fetchval(dsn, "SELECT count(*) FROM idempotency_keys") == 0

            await asyncio.to_thread(upgrade_to_head, dsn, REPO / "migrations")
            accepted = await post_ingest(client, 1, body_for(1, source), key=key, auth=DEV)
            assert accepted.status_code == 202, accepted.text
        assert await fetchval(dsn, "SELECT count(*) FROM raw_object_manifest WHERE source = $1", source) == 1
    finally:
        await drop_database(stack_env["DATABASE_URL"], name)
