"""How much one GraphQL operation may ask for: depth, aliases, complexity (page sizes are the
resolvers' own check).

The complexity of an operation is what it can make the server read: every field costs 1, and a
field with a ``first`` argument (a page) multiplies what is selected under it by that page size
(its default when absent). It is computed before execution, with the variables' values, so
``records(first: 1000) { records { person { records(first: 1000) ... } } }`` is refused before
a single statement runs.

One walk computes all three, in the execute phase (after validation). Strawberry's own depth and
alias limiters were used first, but each instance builds a new validation-rule class, and
extensions are made per request: no validation could ever be served from the cache, which cost a
GraphQL page about a fifth of its time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from strawberry.extensions import SchemaExtension

from exchange.query._cursor import MAX_PAGE

__all__ = ("MAX_ALIASES", "MAX_COMPLEXITY", "MAX_DEPTH", "OperationLimits", "Shape", "operation_shape")

MAX_DEPTH = 6
MAX_ALIASES = 20
MAX_COMPLEXITY = 25_000
"""A full page (1000 records) of a dozen fields each fits; a page of pages does not."""


@dataclass(frozen=True, slots=True)
class Shape:
    complexity: int
    depth: int
    aliases: int


def _page_size(node: FieldNode, default: Any, variables: Mapping[str, Any]) -> int:
    value: Any = default
    for arg in node.arguments or ():
        if arg.name.value != "first":
            continue
        if isinstance(arg.value, IntValueNode):
            value = int(arg.value.value)
        elif isinstance(arg.value, VariableNode):
            value = variables.get(arg.value.name.value, default)
    # An invalid size is refused when the field runs; here it costs as much as the largest.
    return value if isinstance(value, int) and 1 <= value <= MAX_PAGE else MAX_PAGE


def operation_shape(schema: GraphQLSchema, operation: OperationDefinitionNode,
                    fragments: Mapping[str, FragmentDefinitionNode], variables: Mapping[str, Any]) -> Shape:
    root = schema.get_root_type(operation.operation)
    aliases = 0

    def walk(selections: SelectionSetNode, parent: GraphQLObjectType, seen: frozenset[str]) -> tuple[int, int]:
        """(cost, depth) of a selection set."""
        nonlocal aliases
        total, deepest = 0, 0
        for node in selections.selections:
            if isinstance(node, FieldNode):
                name = node.name.value
                aliases += node.alias is not None
                field = parent.fields.get(name)
                if field is None or name.startswith("__"):
                    continue  # unknown fields fail validation; introspection is off outside local
                below = get_named_type(field.type)
                cost, depth = (walk(node.selection_set, below, seen)
                               if node.selection_set and isinstance(below, GraphQLObjectType) else (0, 0))
                first = field.args.get("first")
                size = _page_size(node, first.default_value, variables) if first is not None else 1
                total += 1 + size * cost
                deepest = max(deepest, 1 + depth)
            else:
                if isinstance(node, InlineFragmentNode):
                    inner: SelectionSetNode | None = node.selection_set
                elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                    fragment = fragments.get(node.name.value)
                    inner = None if fragment is None else fragment.selection_set
                    seen = seen | {node.name.value}
                else:
                    inner = None
                if inner is not None:
                    cost, depth = walk(inner, parent, seen)
                    total, deepest = total + cost, max(deepest, depth)
        return total, deepest

    if root is None:
        return Shape(0, 0, 0)
    complexity, depth = walk(operation.selection_set, root, frozenset())
    return Shape(complexity, depth, aliases)


class OperationLimits(SchemaExtension):
    """Refuses an operation over a limit, naming the limit and the operation's number."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)
                          and (context.operation_name is None or (d.name and d.name.value == context.operation_name))]
            for operation in operations[:1]:
                shape = operation_shape(context.schema._schema, operation, fragments, context.variables or {})
                if shape.depth > MAX_DEPTH:
                    raise GraphQLError(f"query depth {shape.depth} exceeds maximum operation depth of {MAX_DEPTH}")
                if shape.aliases > MAX_ALIASES:
                    raise GraphQLError(f"query has {shape.aliases} aliases, over the limit of {MAX_ALIASES}")
                if shape.complexity > MAX_COMPLEXITY:
                    raise GraphQLError(f"query complexity {shape.complexity} is over the limit of {MAX_COMPLEXITY}: "
                                       "ask for smaller pages or fewer nested pages")
        yield
