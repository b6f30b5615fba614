"""GraphQL at /graphql: the original queries, the extensions, keyset pages, batching, limits and
bad input (always a GraphQL error naming the problem or a 400 problem+json, never a 500)."""

from __future__ import annotations

import re
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

ROLES = frozenset({Role.QUERY})


@pytest.fixture(scope="module")
def settings(stack_env: dict[str, str]) -> Settings:
    return make_settings(stack_env, ENV="test")  # as production: no dev token, no introspection


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with running_app(settings, ROLES) as c:
        yield c


@pytest.fixture(scope="module")
async def data(stack_env: dict[str, str]) -> Seeded:
    return await seed(stack_env["DATABASE_URL"], f"gql-{uuid.uuid4().hex[:10]}", 120)


@pytest.fixture(scope="module")
def reader(settings: Settings) -> dict[str, str]:
    return bearer(settings, scopes="read")


async def gql(client: AsyncTestClient[Any], headers: dict[str, str], query: str, **variables: Any) -> dict[str, Any]:
    r = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_the_original_queries_answer_and_dob_is_always_null(
    client: AsyncTestClient[Any], reader: dict[str, str], data: Seeded
) -> None:
    token = data.tokens[0]
    body = await gql(client, reader, """query($t: ID!) { patient(patientToken: $t) { patientToken dob recordCount }
        encounters(patientToken: $t) { encounterId patientToken facilityId admitTime dischargeTime } }""", t=token)
    assert "errors" not in body, body
    assert body["data"]["patient"] == {"patientToken": token, "dob": None, "recordCount": 60}
    encounters = body["data"]["encounters"]
    # Even records are v1 encounters and carry the first token.
    assert [e["encounterId"] for e in encounters] == data.record_ids[0::2][:60]
    assert {e["facilityId"] for e in encounters} == {data.source}
    assert {(e["admitTime"], e["dischargeTime"]) for e in encounters} == {(None, None)}
    unknown = await gql(client, reader, "query($t: ID!) { patient(patientToken: $t) { dob } }", t="0" * 64)
    assert unknown["data"] == {"patient": None}


async def test_a_source_walks_page_by_page_in_order_and_every_record_once(
    client: AsyncTestClient[Any], reader: dict[str, str], data: Seeded
) -> None:
    query = """query($s: String!, $after: String) { records(source: $s, first: 25, after: $after) {
        records { recordId source ingestedAt patientToken } nextCursor } }"""
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = (await gql(client, reader, query, s=data.source, after=after))["data"]["records"]
        seen += [r["recordId"] for r in page["records"]]
        after = page["nextCursor"]
        if after is None:
            break
    assert seen == data.record_ids
    count = await gql(client, reader, 'query($s: String!) { all: recordCount(source: $s) '
                      'window: recordCount(source: $s, since: "2026-01-01T00:00:10Z", until: "2026-01-01T00:00:20Z") }',
                      s=data.source)
    assert count["data"] == {"all": 120, "window": 10}
    ranged = await gql(client, reader, 'query($s: String!) { records(source: $s, since: "2026-01-01T00:00:10Z", '
                       'until: "2026-01-01T00:00:20Z", first: 100) { records { recordId } nextCursor } }',
                       s=data.source)
    assert [r["recordId"] for r in ranged["data"]["records"]["records"]] == data.record_ids[10:20]
    assert ranged["data"]["records"]["nextCursor"] is None


async def test_records_by_id_by_token_and_by_person(
    client: AsyncTestClient[Any], reader: dict[str, str], data: Seeded
) -> None:
    body = await gql(client, reader, """query($id: ID!, $t: ID!, $p: ID!) {
        record(recordId: $id) { recordId eventVersion recordKind patient { patientToken } person { personId } }
        patientRecords(patientToken: $t, first: 1000) { records { recordId } nextCursor }
        person(personId: $p) { personId recordCount records(first: 50) { records { recordId } nextCursor } } }""",
                     id=data.record_ids[1], t=data.tokens[1], p=data.person_id)
    assert "errors" not in body, body
    d = body["data"]
    assert d["record"] == {"recordId": data.record_ids[1], "eventVersion": "2", "recordKind": "claim",
                           "patient": {"patientToken": data.tokens[1]}, "person": {"personId": data.person_id}}
    assert [r["recordId"] for r in d["patientRecords"]["records"]] == data.record_ids[1::2]
    person = d["person"]
    assert person["recordCount"] == 120
    first_page = [r["recordId"] for r in person["records"]["records"]]
    assert first_page == sorted(data.record_ids, key=lambda i: uuid.UUID(i).bytes)[:50]
    rest = await gql(client, reader, "query($p: ID!, $a: String) { person(personId: $p) { records(first: 100, "
                     "after: $a) { records { recordId } nextCursor } } }", p=data.person_id,
                     a=person["records"]["nextCursor"])
    assert len(rest["data"]["person"]["records"]["records"]) == 70
    assert rest["data"]["person"]["records"]["nextCursor"] is None
    missing = await gql(client, reader, "query($id: ID!) { record(recordId: $id) { recordId } }", id=str(uuid.uuid4()))
    assert missing["data"] == {"record": None}


def _statements(metrics: str) -> tuple[float, float]:
    found = dict(re.findall(r'^exchange_query_statements_per_request_(sum|count)\{api="graphql"\} (\S+)$', metrics,
                            re.MULTILINE))
    return float(found.get("sum", 0)), float(found.get("count", 0))


async def test_a_page_of_100_records_with_nested_fields_costs_four_statements_not_one_per_record(
    client: AsyncTestClient[Any], reader: dict[str, str], data: Seeded
) -> None:
    before = _statements((await client.get("/metrics")).text)
    body = await gql(client, reader, """query($s: String!) { records(source: $s, first: 100) { records {
        recordId patient { patientToken recordCount } person { personId recordCount } } } }""", s=data.source)
    assert "errors" not in body, body
    page = body["data"]["records"]["records"]
    assert len(page) == 100
    assert {r["person"]["recordCount"] for r in page} == {120}
    assert {r["patient"]["recordCount"] for r in page} == {60}
    after = _statements((await client.get("/metrics")).text)
    # The page, then one batch each: the records' persons, the persons' counts, the tokens' counts.
    assert (after[0] - before[0], after[1] - before[1]) == (4, 1)


async def test_graphql_needs_a_token_with_the_read_scope(client: AsyncTestClient[Any], settings: Settings) -> None:
    query = {"query": "{ recordCount(source: \"x\") }"}
    none = await client.post("/graphql", json=query)
    assert none.status_code == 401
    assert none.headers["content-type"].startswith("application/problem+json")
    writer = await client.post("/graphql", json=query, headers=bearer(settings, scopes="ingest:write"))
    assert writer.status_code == 403


async def test_record_status_in_graphql_is_for_admins_only(
    client: AsyncTestClient[Any], reader: dict[str, str], settings: Settings
) -> None:
    query = "query($id: ID!) { recordStatus(recordId: $id) { stage } }"
    refused = await gql(client, reader, query, id=str(uuid.uuid4()))
    assert refused["data"] is None
    assert "admin" in refused["errors"][0]["message"]
    admin = bearer(settings, scopes="read admin")
    unknown = await gql(client, admin, query, id=str(uuid.uuid4()))
    assert "no record" in unknown["errors"][0]["message"]


DEEP = "{ record(recordId: \"%s\") { person { records { records { person { records { records { recordId } } } } } } } }"
BAD_QUERIES = [
    ("{ records(source: \"x\" { records { recordId } } }", "Syntax Error"),
    ("{ records(source: \"x\") { records { recordId ssn } } }", "Cannot query field 'ssn'"),
    ("{ nope }", "Cannot query field 'nope'"),
    (DEEP % uuid.uuid4(), "exceeds maximum operation depth"),
    ("{ records(source: \"x\", first: 1000) { records { person { records(first: 1000) { records { recordId } } } } } }",
     "complexity"),
    ("{ records(source: \"x\", first: 5000) { nextCursor } }", f"first: must be from 1 to {MAX_PAGE}"),
    ("{ records(source: \"x\", first: 0) { nextCursor } }", "first: must be from 1"),
    ("{ records(source: \"x\", after: \"not-a-cursor\") { nextCursor } }", "after: not a cursor this list issued"),
    ("{ records(source: \"x\", after: \"cjowOjAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMA\") { nextCursor } }",
     "after: not a cursor this list issued"),  # a person-order cursor given to a time-ordered list
    ("{ patient(patientToken: \"Sam Lee\") { dob } }", "patientToken: must be 64 lower-case hex"),
    ("{ record(recordId: \"42\") { recordId } }", "recordId: must be a UUID"),
    ("{ records(source: \"x\", first: \"many\") { nextCursor } }", "Int cannot represent"),
    ("{ records(source: \"x\", since: \"yesterday\") { nextCursor } }", "DateTime"),
    ("{ __schema { types { name } } }", "introspection"),
    ("{ " + " ".join(f"a{i}: recordCount(source: \"x\")" for i in range(30)) + " }", "aliases"),
]


@pytest.mark.parametrize(("query", "named"), BAD_QUERIES)
async def test_bad_queries_answer_a_graphql_error_naming_the_problem(
    client: AsyncTestClient[Any], reader: dict[str, str], query: str, named: str
) -> None:
    r = await client.post("/graphql", json={"query": query}, headers=reader)
    assert r.status_code in (200, 400), r.text
    errors = r.json()["errors"]
    assert named.lower() in errors[0]["message"].lower(), errors
    assert "Traceback" not in r.text
    assert "Unexpected error" not in r.text


@pytest.mark.parametrize(("body", "named"), [
    (b"{not json", "JSON"),
    (b"{}", "query"),
    (b'{"query": 42}', "query"),
])
async def test_a_request_that_is_not_graphql_is_a_400_problem(
    client: AsyncTestClient[Any], reader: dict[str, str], body: bytes, named: str
) -> None:
    r = await client.post("/graphql", content=body, headers={**reader, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert named in r.json()["detail"]


async def test_introspection_and_the_ide_are_served_in_local_mode_only(
    stack_env: dict[str, str], client: AsyncTestClient[Any], reader: dict[str, str]
) -> None:
    assert (await client.get("/graphql", headers={**reader, "Accept": "text/html"})).status_code != 200
    local = make_settings(stack_env, ENV="local")
    async with running_app(local, ROLES) as c:
        body = await gql(c, {"Authorization": "Bearer dev"}, "{ __schema { queryType { name } } }")
        assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}
        ide = await c.get("/graphql", headers={"Authorization": "Bearer dev", "Accept": "text/html"})
        assert ide.status_code == 200
        assert "graphiql" in ide.text.lower()
