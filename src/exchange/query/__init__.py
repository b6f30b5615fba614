"""Query context: the read API over canonical records (role ``query``): REST pages, GraphQL at
``/graphql``, and a record's journey (``GET /v1/records/{id}/status``)."""

from __future__ import annotations

from exchange.query._cursor import MAX_PAGE
from exchange.query._graphql import graphql_controller, graphql_schema
from exchange.query._journey import Journey, RecordNotFound, record_journey
from exchange.query._params import checked_uuid
from exchange.query._reads import STATEMENTS
from exchange.query._routes import query_routes, status_routes

__all__ = (
    "MAX_PAGE",
    "STATEMENTS",
    "Journey",
    "RecordNotFound",
    "checked_uuid",
    "graphql_controller",
    "graphql_schema",
    "query_routes",
    "record_journey",
    "status_routes",
)
