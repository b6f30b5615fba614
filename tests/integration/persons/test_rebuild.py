"""`exchange derive persons`: recompute every person from tokens, keep ids, report disagreement."""

from __future__ import annotations

import pytest

from exchange.adapters.postgres import Database
from exchange.events import uuid7
from exchange.linkage import DEFAULT_MODEL
from exchange.persons import PersonLinker, PersonsRebuild, surviving_person
from tests.integration.persons.test_linker import link, request

pytestmark = pytest.mark.timeout(180)


async def test_a_rebuild_repairs_a_split_person_keeps_its_id_and_a_second_run_changes_nothing(
    db: Database, unique: str
) -> None:
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    kid = f"k{unique}"
    anna = [await link(db, linker, request(given, "Smith", "1980-02-03", "123-45-6701", key_id=kid))
            for given in ("Anna", "Ana", "Anna")]
    assert len({p for [p] in anna}) == 1
    person = anna[0][0]
    rebuild = PersonsRebuild(db)
    await rebuild.run(dry_run=False, fit=False)  # whatever other tests left, under the same model
    # Tamper: one record of the person moved to a person of its own.
    stray = str(uuid7())
    async with db.transaction() as conn:
        moved = await conn.fetchval("""
            UPDATE record_persons SET person_id = $1::uuid
            WHERE record_id = (SELECT record_id FROM record_persons WHERE person_id = $2::uuid
                               ORDER BY record_id DESC LIMIT 1)
            RETURNING record_id::text""", stray, person)
    assert moved is not None

    report = await rebuild.verify()
    assert report["agrees"] is False and report["should_merge"] >= 1

    dry = await rebuild.run(dry_run=True, fit=False)
    assert dry["records_moved"] >= 1
    assert (await rebuild.verify())["agrees"] is False  # a dry run writes nothing

    async with db.connection() as conn:
        marked = await conn.fetchval("SELECT count(*) FROM linkage_changes WHERE tokens IS NULL")
    done = await rebuild.run(dry_run=False, fit=False)
    assert done["records_moved"] >= 1 and done["ids_absorbed"] >= 1
    async with db.connection() as conn:  # plans read before it are checked against what it moved
        assert await conn.fetchval("SELECT count(*) FROM linkage_changes WHERE tokens IS NULL") == marked + 1
    assert (await rebuild.verify())["agrees"] is True
    async with db.connection() as conn:
        assert await surviving_person(conn, person) == person  # the majority kept its id
        assert await surviving_person(conn, stray) == person  # the stray id answers with it
        assert await conn.fetchval("SELECT person_id::text FROM record_persons WHERE record_id = $1::uuid",
                                   moved) == person
    again = await rebuild.run(dry_run=False, fit=False)
    assert again["records_moved"] == 0 and again["ids_absorbed"] == 0


async def test_a_rebuild_fits_a_model_on_the_records_and_stores_it(db: Database, unique: str) -> None:
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    kid = f"k{unique}"
    for n in range(6):
        await link(db, linker, request("Pat", f"Doe{n}", "1970-01-0" + str(n + 1), f"400-00-{n:04d}", key_id=kid),
                   request("Patt", f"Doe{n}", "1970-01-0" + str(n + 1), f"400-00-{n:04d}", key_id=kid))
    result = await PersonsRebuild(db).run(dry_run=False)
    try:
        assert result["model_id"] is not None
        assert result["pairs"] >= 6
        assert result["threshold_bits"] > 0
        assert (await PersonsRebuild(db).verify())["agrees"] is True  # verified under the model it stored
    finally:
        async with db.transaction() as conn:  # later tests link under the shipped model
            await conn.execute("DELETE FROM linkage_models WHERE model_id = $1", result["model_id"])
