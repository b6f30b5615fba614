"""The incremental person step against the real database: join, merge, start; stable ids; redelivery;
and two transactions resolving one person's records at the same moment."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import pytest

from exchange.adapters.postgres import Connection, Database
from exchange.events import uuid7
from exchange.linkage import DEFAULT_MODEL, PatientIdentifiers, fields_present, key_tokens
from exchange.persons import (
    LINKAGE_LOCK,
    LinkPlan,
    LinkRequest,
    PersonLinker,
    apply_call,
    person_records,
    surviving_person,
)

pytestmark = pytest.mark.timeout(120)
KEY = b"persons-test-linkage-key-0123456789abcdef"


def request(given: str, family: str, dob: str, ssn: str | None = None, *, key_id: str | None = None) -> LinkRequest:
    """A record's linkage request; each test uses a key id of its own, so tests never link to each other."""
    ids = PatientIdentifiers(given, family, dt.date.fromisoformat(dob), ssn)
    kid = key_id or "t"
    block = key_tokens(kid, KEY, ids)
    return LinkRequest(record_id=str(uuid7()), tokens=(block,), fields=fields_present(set(block.recipes)))


async def link(db: Database, linker: PersonLinker, *requests: LinkRequest) -> list[str]:
    async with db.transaction() as conn:
        return [linked.person_id for linked in await linker.link(conn, requests)]


async def test_a_typo_joins_the_person_and_strangers_sharing_a_surname_or_a_dob_do_not(
    db: Database, unique: str
) -> None:
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    kid = f"k{unique}"
    [anna] = await link(db, linker, request("Anna", "Smith", "1980-02-03", "123-45-6701", key_id=kid))
    [typo] = await link(db, linker, request("Ana", "Smith", "1980-02-03", "123-45-6701", key_id=kid))
    assert typo == anna
    strangers = await link(
        db, linker,
        request("Bert", "Smith", "1971-07-09", "555-12-3456", key_id=kid),  # only the surname
        request("Carl", "Jones", "1980-02-03", "777-88-9999", key_id=kid),  # only the dob
    )
    assert len({anna, *strangers}) == 3


async def test_a_bridging_record_merges_two_persons_into_the_older_and_old_ids_still_answer(
    db: Database, unique: str
) -> None:
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    kid = f"k{unique}"
    [older] = await link(db, linker, request("Maria", "Garcia", "1990-05-06", key_id=kid))  # no SSN
    # The same dob and nothing else: two persons.
    [younger] = await link(db, linker, request("Joanne", "Perez", "1990-05-06", "321-54-9876", key_id=kid))
    assert older != younger
    # Maria's names with the dob and SSN of the second record: one person by both evidences.
    [bridge] = await link(db, linker, request("Maria", "Garcia", "1990-05-06", "321-54-9876", key_id=kid))
    async with db.connection() as conn:
        survivor = await surviving_person(conn, younger)
        assert await surviving_person(conn, older) == survivor
        records = await person_records(conn, survivor or "", after=None, limit=10)
    assert survivor == bridge == min(older, younger)
    assert len(records) == 0  # these records have no canonical rows: the page joins canonical records


async def test_a_redelivered_record_keeps_its_person(db: Database, unique: str) -> None:
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    one = request("Lena", "Berg", "2001-09-09", key_id=f"k{unique}")
    first = await link(db, linker, one)
    assert await link(db, linker, one) == first


async def test_a_second_transaction_waits_for_the_first_and_joins_its_person(db: Database, unique: str) -> None:
    # The first links its record and stays open; the second, resolving a typo of the same person,
    # must wait for it (reading candidates before it commits would make a second person).
    kid = f"k{unique}"
    a = request("Olof", "Lind", "1966-12-12", "111-22-3344", key_id=kid)
    b = request("Olaf", "Lind", "1966-12-12", "111-22-3344", key_id=kid)
    first_linked, release = asyncio.Event(), asyncio.Event()

    async def first() -> list[str]:
        async with db.transaction() as conn:
            people = [x.person_id for x in await PersonLinker(db, model=DEFAULT_MODEL).link(conn, [a])]
            first_linked.set()
            await release.wait()
            return people

    async def second() -> list[str]:
        await first_linked.wait()
        async with db.transaction() as conn:
            return [x.person_id for x in await PersonLinker(db, model=DEFAULT_MODEL).link(conn, [b])]

    one, two = asyncio.create_task(first()), asyncio.create_task(second())
    await first_linked.wait()
    waited = False
    for _ in range(100):  # until the second is seen waiting for the linkage lock (or 5 s)
        async with db.connection() as conn:
            waited = bool(await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))
        if waited or two.done():
            break
        await asyncio.sleep(0.05)
    release.set()
    assert await one == await two
    assert waited


async def test_records_of_one_batch_link_to_each_other(db: Database, unique: str) -> None:
    kid = f"k{unique}"
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    people = await link(db, linker, request("Zoe", "Quinn", "1999-03-04", "222-33-4444", key_id=kid),
                        request("Zoe", "Quin", "1999-04-03", "222-33-4444", key_id=kid),  # a typo, a swapped dob
                        request("Yuri", "Orlov", "1950-10-10", key_id=kid))
    assert people[0] == people[1] != people[2]
    assert all(uuid.UUID(p).version == 7 for p in people)


async def test_a_token_shared_by_too_many_records_makes_no_candidates(db: Database, unique: str) -> None:
    # Test data naming one patient again and again: past MAX_TOKEN_RECORDS records, the shared
    # tokens tell nobody apart, and a record's lookup does not read them all.
    from exchange.persons._linker import MAX_TOKEN_RECORDS

    kid = f"k{unique}"
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    crowd = await link(db, linker, *(request("John", "Doe", "1970-01-01", key_id=kid)
                                     for _ in range(MAX_TOKEN_RECORDS + 1)))
    assert len(set(crowd)) == 1  # linked while they were few enough (in one batch)
    [late] = await link(db, linker, request("John", "Doe", "1970-01-01", key_id=kid))
    assert late != crowd[0]
    [other] = await link(db, linker, request("Jane", "Roe", "1971-02-02", "123-77-4444", key_id=kid))
    [again] = await link(db, linker, request("Jane", "Roe", "1971-02-02", "123-77-4444", key_id=kid))
    assert other == again  # rare tokens still link


async def apply(db: Database, plan: LinkPlan) -> None:
    """``linkage_apply`` alone, in autocommit, as the normalizer's write calls it."""
    async with db.connection() as conn:
        await conn.fetchval(f"SELECT {apply_call(1)}", *plan.args)


async def test_a_plan_made_before_another_batch_linked_a_candidate_is_refused_and_a_new_plan_joins_it(
    db: Database, unique: str
) -> None:
    # Two processes plan one person's records at the same moment, neither seeing the other's;
    # the second to apply must be refused (else two persons forever), and its next plan joins.
    kid = f"k{unique}"
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    a = request("Ingrid", "Holm", "1975-06-07", "444-55-6677", key_id=kid)
    b = request("Ingrid", "Holm", "1975-06-07", "444-55-6677", key_id=kid)
    async with db.connection() as conn:
        plan_a = await linker.plan(conn, [a])
        plan_b = await linker.plan(conn, [b])
    assert plan_a.linked[0].person_id != plan_b.linked[0].person_id  # each decided alone
    await apply(db, plan_a)
    with pytest.raises(asyncpg.SerializationError):
        await apply(db, plan_b)
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM record_persons WHERE record_id = $1", b.record_id) == 0
        again = await linker.plan(conn, [b])
    await apply(db, again)
    assert again.linked[0].person_id == plan_a.linked[0].person_id
    async with db.connection() as conn:
        stored = await conn.fetchval("SELECT person_id::text FROM record_persons WHERE record_id = $1", b.record_id)
    assert stored == plan_a.linked[0].person_id


async def test_a_plan_is_not_refused_for_batches_of_other_people(db: Database, unique: str) -> None:
    kid = f"k{unique}"
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    a = request("Pekka", "Virtanen", "1961-01-21", "610-12-3434", key_id=kid)
    b = request("Mirja", "Salo", "1988-08-18", "880-81-1818", key_id=kid)
    async with db.connection() as conn:
        plan_a = await linker.plan(conn, [a])
        plan_b = await linker.plan(conn, [b])
    await apply(db, plan_a)
    await apply(db, plan_b)  # no shared token: b's candidates did not change
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM record_persons WHERE record_id = ANY($1::uuid[])",
                                   [a.record_id, b.record_id]) == 2


async def test_planning_does_not_wait_for_the_linkage_lock_and_applying_does(db: Database, unique: str) -> None:
    # The lock is for the write: a normalizer decides while another one holds it.
    kid = f"k{unique}"
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    a = request("Sven", "Dahl", "1944-04-14", key_id=kid)
    async with db.transaction() as holder:
        await holder.execute("SELECT pg_advisory_xact_lock($1)", LINKAGE_LOCK)
        async with db.connection() as conn:
            plan = await asyncio.wait_for(linker.plan(conn, [a]), timeout=10)
        applying = asyncio.create_task(apply(db, plan))
        await asyncio.sleep(0.5)
        assert not applying.done()
    await asyncio.wait_for(applying, timeout=10)


class _Interleaved(PersonLinker):
    """A linker whose first ``times`` plans are overtaken: right after each read, another process
    links one more record of the same person (a real transaction on another connection)."""

    def __init__(self, db: Database, same_person: Callable[[], LinkRequest], times: int) -> None:
        self.reported = 0  # what a metric would count (bootstrap passes the counter's inc)
        super().__init__(db, model=DEFAULT_MODEL, on_refusal=self._report)
        self._other = PersonLinker(db, model=DEFAULT_MODEL)
        self._same_person = same_person
        self._times = times

    def _report(self) -> None:
        self.reported += 1

    async def plan(self, conn: Connection, requests: Sequence[LinkRequest], *, checked: bool = True) -> LinkPlan:
        made = await super().plan(conn, requests, checked=checked)
        if self._times > 0:
            self._times -= 1
            await link(self._db, self._other, self._same_person())
        return made


_JUST_LINK = f"SELECT {apply_call(1)} AS ok"


@pytest.mark.parametrize("overtaken", [1, 3])
async def test_an_overtaken_write_plans_again_and_after_three_links_under_the_lock(
    db: Database, unique: str, overtaken: int
) -> None:
    kid = f"k{unique}"
    twin = functools.partial(request, "Greta", "Lund", "1958-11-30", "585-11-3030", key_id=kid)
    linker = _Interleaved(db, twin, times=overtaken)
    mine = twin()
    rows = await linker.write_linked([mine], _JUST_LINK, "SELECT true AS ok", [])
    assert [r["ok"] for r in rows] == [True]
    assert linker.refusals == linker.reported == overtaken  # 3: every optimistic try lost, the locked path wrote
    async with db.connection() as conn:
        persons = await conn.fetch(
            "SELECT DISTINCT rp.person_id FROM record_persons rp JOIN record_linkage rl USING (record_id) "
            "WHERE rl.key_id = $1", kid)
    assert len(persons) == 1  # the record and every record that overtook it: one person


def _merge_args(survivor: str, absorbed: str) -> list[object]:
    """``linkage_apply``'s arguments for a write that only merges ``absorbed`` into ``survivor``."""
    return [[], b"", None, None, None, None, [], [], [], [], [], [], [], [survivor], [absorbed]]


async def test_a_plan_whose_candidate_was_merged_away_meanwhile_is_refused(db: Database, unique: str) -> None:
    # Another batch merges the person a plan joined without sharing a token with the plan: the
    # linkage log names the person it merged away, so the apply reads the candidates again.
    kid = f"k{unique}"
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    [first] = await link(db, linker, request("Edda", "Moss", "1983-03-13", "313-13-1313", key_id=kid))
    [other] = await link(db, linker, request("Tobias", "Fern", "1952-02-12", "212-12-1212", key_id=kid))
    twin = request("Edda", "Moss", "1983-03-13", "313-13-1313", key_id=kid)
    async with db.connection() as conn:
        plan = await linker.plan(conn, [twin])
        assert plan.linked[0].person_id == first
        await conn.fetchval(f"SELECT {apply_call(1)}", *_merge_args(other, first))
    with pytest.raises(asyncpg.SerializationError):
        await apply(db, plan)
    async with db.connection() as conn:
        again = await linker.plan(conn, [twin])
    assert again.linked[0].person_id == other


async def _refused_though_the_log_does_not_show_why(
    db: Database, unique: str, hide: Callable[[PersonLinker, LinkRequest], Awaitable[None]]
) -> None:
    """A plan of a known person's record; a twin linked after its read; ``hide`` makes the log no
    longer show that write. The apply must read the candidates again: refused, and the next plan
    joins the twin."""
    kid = f"k{unique}"
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    same = functools.partial(request, "Runa", "Vik", "1991-09-19", "919-19-1919", key_id=kid)
    await link(db, linker, same())
    mine = same()
    async with db.connection() as conn:
        plan = await linker.plan(conn, [mine])
    [twin] = await link(db, linker, same())
    await hide(linker, mine)
    with pytest.raises(asyncpg.SerializationError):
        await apply(db, plan)
    async with db.connection() as conn:
        again = await linker.plan(conn, [mine])
    assert again.linked[0].person_id == twin


async def test_a_plan_older_than_the_linkage_log_reaches_is_checked_by_reading_again(
    db: Database, unique: str
) -> None:
    # More writes than the log keeps, so the twin's entry is gone from it.
    async def trim(linker: PersonLinker, mine: LinkRequest) -> None:
        async with db.connection() as conn:  # writes naming no token of anyone (more than migration 0008 keeps)
            await conn.execute("INSERT INTO linkage_changes (tokens) SELECT ''::bytea FROM generate_series(1, 600)")
        await link(db, linker, request("Olle", "Strand", "1940-04-04", key_id=f"k{unique}"))  # trims the log
        async with db.connection() as conn:
            assert await conn.fetchval(
                "SELECT count(*) FROM linkage_changes WHERE position($1::bytea IN tokens) > 0",
                mine.tokens[0].digests[0]) == 0  # the twin's entry was trimmed

    await _refused_though_the_log_does_not_show_why(db, unique, trim)


async def test_a_plan_older_than_a_reset_linkage_log_is_checked_by_reading_again(db: Database, unique: str) -> None:
    # The log emptied with its clock restarted (an operator's TRUNCATE ... RESTART IDENTITY): a
    # clock behind the plan's says nothing of what was written since.
    async def reset(_linker: PersonLinker, _mine: LinkRequest) -> None:
        async with db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LINKAGE_LOCK)
            await conn.execute("TRUNCATE linkage_changes RESTART IDENTITY")

    await _refused_though_the_log_does_not_show_why(db, unique, reset)


async def test_a_write_outside_linkage_apply_that_marks_the_log_gets_plans_checked(
    db: Database, unique: str
) -> None:
    # A rebuild moves records between persons and says only that anything may have changed.
    from exchange.persons._linker import mark_changed

    kid = f"k{unique}"
    linker = PersonLinker(db, model=DEFAULT_MODEL)
    first = request("Ilse", "Kron", "1977-07-17", "717-17-1717", key_id=kid)
    await link(db, linker, first)
    async with db.connection() as conn:
        plan = await linker.plan(conn, [request("Ilse", "Kron", "1977-07-17", "717-17-1717", key_id=kid)])
    moved_to = str(uuid7())
    async with db.transaction() as conn:
        await mark_changed(conn)
        await conn.execute("UPDATE record_persons SET person_id = $2 WHERE record_id = $1", first.record_id, moved_to)
    with pytest.raises(asyncpg.SerializationError):
        await apply(db, plan)


async def test_a_write_deadlocked_by_a_locked_write_of_its_own_record_plans_again(db: Database, unique: str) -> None:
    # The optimistic write stores its tokens, then waits for the lock; a locked write (the key
    # rotation's, another process's third try) holding the lock stores the same record's tokens
    # and waits for it. PostgreSQL ends one of them (40P01): the optimistic one plans again.
    from exchange.persons._linker import store_tokens

    linker = PersonLinker(db, model=DEFAULT_MODEL)
    mine = request("Hilde", "Brandt", "1939-09-09", "939-09-0909", key_id=f"k{unique}")
    async with db.transaction() as holder:
        await holder.execute("SELECT pg_advisory_xact_lock($1)", LINKAGE_LOCK)
        writing = asyncio.create_task(linker.write_linked([mine], _JUST_LINK, "SELECT true AS ok", []))
        for _ in range(200):  # until the write waits for the lock, its tokens stored (or 10 s)
            async with db.connection() as conn:
                if await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"):
                    break
            await asyncio.sleep(0.05)
        await store_tokens(holder, [(mine.record_id, mine.tokens)])  # waits for the write: a cycle
    rows = await asyncio.wait_for(writing, timeout=30)
    assert [r["ok"] for r in rows] == [True]
    assert linker.refusals == 1
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM record_persons WHERE record_id = $1", mine.record_id) == 1

