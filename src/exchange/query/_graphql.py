"""``/graphql`` on the query role (scope ``read``): Strawberry's Litestar controller, hardened.

- Auth is the same ``before_request`` hook as every route: 401/403 problem+json before GraphQL.
- Bad HTTP input (no query, body not JSON) answers 400 problem+json instead of Strawberry's text.
- Limits: depth, aliases and complexity (``_graphql_limits``), tokens, page sizes (resolvers).
- Introspection and the GraphiQL page only with ``ENV=local``.
- Errors: ours (bad arguments, scope) and GraphQL's (syntax, unknown fields, limits) are answered
  as they are; anything else is masked to "Unexpected error." and logged by type only (an
  asyncpg message can quote a value). No stack trace reaches a client or the log.
- No websocket route: there are no subscriptions, and a websocket would bypass the auth hook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import msgspec
import strawberry
from cross_web import HTTPException
from graphql import GraphQLError, GraphQLObjectType
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.types import Dependencies
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.litestar import make_graphql_controller
from strawberry.types import ExecutionContext

from exchange.adapters.postgres import Database
from exchange.errors import AuthError, DependencyUnavailable, InvalidRequest
from exchange.ops.metrics import Metrics
from exchange.query._graphql_execution import PageExecutionContext, plain_attribute
from exchange.query._graphql_limits import OperationLimits
from exchange.query._graphql_schema import GraphQLContext, Loaders, Query
from exchange.query._reads import Reads
from exchange.web import principal_of
from exchange.web.auth import require_scope

__all__ = ("graphql_controller", "graphql_schema")

_log = logging.getLogger("exchange.graphql")
_ANSWERED = (InvalidRequest, AuthError, DependencyUnavailable, GraphQLError)


def _masked(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, _ANSWERED)


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            original = error.original_error
            if original is not None and not isinstance(original, _ANSWERED):
                _log.error("graphql resolver failed", extra={"error_type": type(original).__name__,
                                                             "path": ".".join(map(str, error.path or ()))})


def graphql_schema(*, introspection: bool) -> strawberry.Schema:
    # Factories: Strawberry makes each extension anew per request (its caches live at module level).
    extensions: list[Callable[[], SchemaExtension]] = [
        partial(ParserCache, maxsize=256),
        partial(ValidationCache, maxsize=256),  # the rules must be the same classes every request
        partial(MaxTokensLimiter, max_token_count=2000),
        OperationLimits,
        partial(MaskErrors, should_mask_error=_masked),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    schema = _Schema(query=Query, extensions=extensions, execution_context_class=PageExecutionContext)
    _plain_fields_by_getattr(schema)
    return schema


def _plain_fields_by_getattr(schema: strawberry.Schema) -> None:
    """A field without a resolver of its own (a dataclass attribute) is read with a plain getattr
    instead of Strawberry's wrapper (which builds an ``Info`` and checks for an awaitable per field),
    and marked so for ``PageExecutionContext``: the same value, at a fraction of the cost."""
    for type_ in schema._schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            definition = schema.get_field_for_type(name, type_.name)
            if definition is not None and definition.base_resolver is None and not definition.extensions:
                field.resolve = plain_attribute(definition.python_name)


def graphql_controller(*, local: bool) -> type[Any]:
    """The ``/graphql`` controller class (GraphiQL and introspection only when ``local``)."""

    async def context(request: Request[Any, Any, Any], state: State) -> GraphQLContext:
        db: Database = state.runtime.db
        reads = Reads(db)
        return GraphQLContext(request=request, principal=principal_of(request), db=db, reads=reads,
                              loaders=Loaders(reads))

    def response() -> Response[Any]:
        return Response({})

    async def no_root() -> None:
        return None

    base = make_graphql_controller(graphql_schema(introspection=local), path="/graphql",
                                   graphql_ide="graphiql" if local else None, subscription_protocols=())

    class GraphQLRoute(base):  # type: ignore[valid-type,misc]
        # Strawberry provides its sub-response in a worker thread (a hop per request): not here.
        dependencies: ClassVar[Dependencies] = {
            "context": Provide(context),
            "root_value": Provide(no_root),
            "response": Provide(response, sync_to_thread=False),
        }
        before_request = require_scope
        opt: ClassVar[dict[str, Any]] = {"scope": "read"}
        include_in_schema = False  # its contract is contracts/graphql/schema.graphql
        websocket_endpoint = None

        # Strawberry's handlers, re-declared with named dependencies (Litestar 2.23+ deprecates
        # inferring them, and warnings are errors here).
        @get()
        async def handle_http_get(self, request: Request[Any, Any, Any], context: NamedDependency[GraphQLContext],
                                  root_value: NamedDependency[Any], response: NamedDependency[Response[Any]],
                                  ) -> Response[Any]:
            self.temporal_response = response  # Strawberry's, shared by requests: never changed here
            return await self.execute_request(request, context, root_value)

        @post(status_code=200)
        async def handle_http_post(self, request: Request[Any, Any, Any], context: NamedDependency[GraphQLContext],
                                   root_value: NamedDependency[Any], response: NamedDependency[Response[Any]],
                                   ) -> Response[Any]:
            self.temporal_response = response
            return await self.execute_request(request, context, root_value)

        def encode_json(self, data: object) -> bytes:
            return msgspec.json.encode(data)  # json.dumps took ~10 % of a 100-record page

        async def execute_request(self, request: Request[Any, Any, Any], context: GraphQLContext,
                                  root_value: Any) -> Response[Any]:
            try:
                return await self.run(request, context=context, root_value=root_value)  # type: ignore[no-any-return]
            except HTTPException as exc:  # no query, a body that is not JSON, a GET mutation...
                raise InvalidRequest(f"graphql: {exc.reason}", status=exc.status_code) from None
            finally:
                metrics: Metrics = request.app.state.metrics
                metrics.query_statements.labels("graphql").observe(context.reads.statements)

    return GraphQLRoute
