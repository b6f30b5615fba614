"""The page shortcut (query/_graphql_execution.py) answers exactly what graphql-core answers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from exchange.adapters.jwt import Principal
from exchange.query import graphql_schema
from exchange.query._graphql_schema import GraphQLContext, Query
from exchange.query._reads import Page, RecordRow

AT = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
PAGE = """query { records(source: "s") { nextCursor records {
  id: recordId source eventVersion recordKind schemaHint ingestedAt normalizedAt patientToken
  ... on Record { again: source } patient { patientToken dob } } } }"""


def _rows(n: int, **overrides: Any) -> list[RecordRow]:
    return [RecordRow(**{"record_id": str(uuid.UUID(int=i)), "source": "s", "event_version": "2",
                         "record_kind": None if i % 2 else "claim", "schema_hint": None, "ingested_at": AT,
                         "normalized_at": AT, "patient_token": "a" * 64, **overrides}) for i in range(n)]


class _Reads:
    statements = 0

    def __init__(self, rows: list[RecordRow]) -> None:
        self.rows = rows

    async def by_source(self, *_: Any, **__: Any) -> Page:
        return Page(self.rows, "next")


async def _run(schema: strawberry.Schema, rows: list[RecordRow]) -> Any:
    context = GraphQLContext(principal=Principal("t", frozenset({"read"})), db=None,  # type: ignore[arg-type]
                             reads=_Reads(rows), loaders=None)  # type: ignore[arg-type]
    return await schema.execute(PAGE, context_value=context)


@pytest.fixture(scope="module")
def schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    fast = graphql_schema(introspection=False)
    plain = strawberry.Schema(query=Query, execution_context_class=StrawberryGraphQLCoreExecutionContext)
    return fast, plain


@pytest.mark.parametrize("rows", [_rows(100), _rows(3, schema_hint="h"), _rows(0)], ids=["page", "hints", "empty"])
async def test_a_page_answers_as_graphql_core_answers_it(
    schemas: tuple[strawberry.Schema, strawberry.Schema], rows: list[RecordRow]
) -> None:
    fast, plain = await _run(schemas[0], rows), await _run(schemas[1], rows)
    assert fast.errors is None
    assert plain.errors is None
    assert fast.data == plain.data
    if rows:
        first = fast.data["records"]["records"][0]
        assert first["ingestedAt"] == AT.isoformat()
        assert first["again"] == "s"
        assert first["patient"] == {"patientToken": "a" * 64, "dob": None}


async def test_a_null_where_the_schema_forbids_one_is_graphql_cores_error(
    schemas: tuple[strawberry.Schema, strawberry.Schema]
) -> None:
    rows = _rows(2)
    rows[1] = dataclasses.replace(rows[1], source=None)  # type: ignore[arg-type]  # what the test is about
    fast, plain = await _run(schemas[0], rows), await _run(schemas[1], rows)
    assert fast.data == plain.data
    assert [e.path for e in fast.errors] == [e.path for e in plain.errors] == [["records", "records", 1, "source"]]
    assert "non-nullable" in plain.errors[0].message
    assert fast.errors[0].message == "Unexpected error."  # ours masks what is not a client's error
