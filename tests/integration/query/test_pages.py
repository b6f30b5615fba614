"""The REST read routes page with keyset cursors, and every list has a hard maximum."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from exchange.query import MAX_PAGE
from exchange.roles import Role
from exchange.settings import Settings
from tests.integration.query._seed import Seeded, seed
from tests.support.app import bearer, make_settings, running_app

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def settings(stack_env: dict[str, str]) -> Settings:
    return make_settings(stack_env, ENV="test")


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with running_app(settings, frozenset({Role.QUERY})) as c:
        yield c


@pytest.fixture(scope="module")
async def data(stack_env: dict[str, str]) -> Seeded:
    return await seed(stack_env["DATABASE_URL"], f"rest-{uuid.uuid4().hex[:10]}", 45)


@pytest.fixture(scope="module")
def reader(settings: Settings) -> dict[str, str]:
    return bearer(settings, scopes="read")


async def _walk(client: AsyncTestClient[Any], path: str, headers: dict[str, str], **params: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        r = await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})}, headers=headers)
        assert r.status_code == 200, r.text
        seen += [record["record_id"] for record in r.json()["records"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the walk did not end")


async def test_a_source_and_a_patient_token_walk_page_by_page_every_record_once(
    client: AsyncTestClient[Any], reader: dict[str, str], data: Seeded
) -> None:
    assert await _walk(client, f"/sources/{data.source}/records", reader, limit=10) == data.record_ids
    assert await _walk(client, f"/patients/{data.tokens[0]}/records", reader, limit=7) == data.record_ids[0::2]
    window = await _walk(client, f"/sources/{data.source}/records", reader, limit=4,
                         since="2026-01-01T00:00:05Z", until="2026-01-01T00:00:15")  # no offset: UTC
    assert window == data.record_ids[5:15]
    by_id = sorted(data.record_ids, key=lambda i: uuid.UUID(i).bytes)
    assert await _walk(client, f"/persons/{data.person_id}/records", reader, limit=20) == by_id


@pytest.mark.parametrize(("params", "named"), [
    ({"limit": MAX_PAGE + 1}, "limit"),
    ({"limit": 0}, "limit"),
    ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
    ({"cursor": "%%%"}, "cursor"),
    ({"cursor": "x" * 500}, "cursor"),
    ({"since": "yesterday"}, "since"),
    ({"until": "0001-01-01T00:00:00+14:00"}, "until"),
])
async def test_bad_page_parameters_are_a_400_problem_naming_them(
    client: AsyncTestClient[Any], reader: dict[str, str], data: Seeded, params: dict[str, Any], named: str
) -> None:
    for path in (f"/sources/{data.source}/records", f"/patients/{data.tokens[0]}/records"):
        if path.startswith("/patients") and named in ("since", "until"):
            continue
        r = await client.get(path, params=params, headers=reader)
        assert r.status_code == 400, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert named in r.text


async def test_a_cursor_of_another_list_or_a_bad_source_is_refused(
    client: AsyncTestClient[Any], reader: dict[str, str], data: Seeded
) -> None:
    person_page = await client.get(f"/persons/{data.person_id}/records", params={"limit": 1}, headers=reader)
    r = await client.get(f"/sources/{data.source}/records", params={"cursor": person_page.json()["next_cursor"]},
                         headers=reader)
    assert r.status_code == 400
    assert r.json()["detail"] == "cursor: not a cursor this list issued"
    assert (await client.get("/sources/..%2Fetc/records", headers=reader)).status_code in (400, 404)
    assert (await client.get(f"/sources/{data.source}/records")).status_code == 401
