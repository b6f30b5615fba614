"""How much one GraphQL operation may ask for: depth, complexity, page sizes.

The complexity of an operation is what it can make the server read: every field costs 1, and a
field with a ``first`` argument (a page) multiplies what is selected under it by that page size
(its default when absent). It is computed before execution, with the variables' values, so
``records(first: 1000) { records { person { records(first: 1000) ... } } }`` is refused before
a single statement runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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

__all__ = ("MAX_COMPLEXITY", "MAX_DEPTH", "ComplexityLimiter", "operation_complexity")

MAX_DEPTH = 6
MAX_COMPLEXITY = 25_000
"""A full page (1000 records) of a dozen fields each fits; a page of pages does not."""


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


def operation_complexity(schema: GraphQLSchema, operation: OperationDefinitionNode,
                         fragments: Mapping[str, FragmentDefinitionNode], variables: Mapping[str, Any]) -> int:
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0

    def cost(selections: SelectionSetNode, parent: GraphQLObjectType, seen: frozenset[str]) -> int:
        total = 0
        for node in selections.selections:
            if isinstance(node, FieldNode):
                name = node.name.value
                field = parent.fields.get(name)
                if field is None or name.startswith("__"):
                    continue  # unknown fields fail validation; introspection is off outside local
                below = get_named_type(field.type)
                children = (cost(node.selection_set, below, seen)
                            if node.selection_set and isinstance(below, GraphQLObjectType) else 0)
                first = field.args.get("first")
                size = _page_size(node, first.default_value, variables) if first is not None else 1
                total += 1 + size * children
            elif isinstance(node, InlineFragmentNode):
                total += cost(node.selection_set, parent, seen)
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                fragment = fragments.get(node.name.value)
                if fragment is not None:
                    total += cost(fragment.selection_set, parent, seen | {node.name.value})
        return total

    return cost(operation.selection_set, root, frozenset())


class ComplexityLimiter(SchemaExtension):
    """Refuses an operation whose complexity is over ``MAX_COMPLEXITY``, naming both numbers."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)
                          and (context.operation_name is None or (d.name and d.name.value == context.operation_name))]
            for operation in operations[:1]:
                found = operation_complexity(context.schema._schema, operation, fragments, context.variables or {})
                if found > MAX_COMPLEXITY:
                    raise GraphQLError(f"query complexity {found} is over the limit of {MAX_COMPLEXITY}: "
                                       "ask for smaller pages or fewer nested pages")
        yield
