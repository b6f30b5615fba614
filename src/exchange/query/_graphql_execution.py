"""A faster way through a page of records: objects whose selected fields are all plain leaves.

graphql-core executes every field of every object on its own (a path, resolve info, the resolver,
an awaitable check, completion): ~3.5 µs a field, 2.8 ms for a 100-record page of 8 fields, more
than the whole REST answer of the same page. Most of a page is fields that are a dataclass
attribute and a scalar. For a selection made only of those -- no arguments, a plain attribute
(``plain_attribute``), a scalar or enum type -- the object is completed here in one loop with the
same serializers; anything else (a field with a resolver, a null where the type forbids it, a
value the scalar refuses) goes through graphql-core unchanged, which then answers as it always
does. Field middleware (Strawberry extensions with a ``resolve`` hook) disables the shortcut.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLEnumType, GraphQLNonNull, GraphQLObjectType, GraphQLScalarType, Undefined
from graphql.execution.collect_fields import GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

__all__ = ("PageExecutionContext", "plain_attribute")

_PLAIN = "__exchange_plain_attribute__"
_Plan = list[tuple[str, str, Callable[[Any], Any], bool]]  # response key, attribute, serialize, non-null


def plain_attribute(python_name: str) -> Callable[..., Any]:
    """The resolver of a field that is the source object's attribute ``python_name``."""

    def resolve(source: Any, _info: Any) -> Any:
        return getattr(source, python_name)

    setattr(resolve, _PLAIN, python_name)
    return resolve


class PageExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[int, tuple[GroupedFieldSet, _Plan | None]] = {}

    def _plan(self, parent_type: GraphQLObjectType, fields: GroupedFieldSet) -> _Plan | None:
        cached = self._plans.get(id(fields))
        if cached is not None:
            return cached[1]
        plan: _Plan | None = []
        for key, details in fields.items():
            field = parent_type.fields.get(details[0].node.name.value)
            attribute = getattr(field.resolve, _PLAIN, None) if field is not None else None
            leaf = field.type.of_type if field is not None and isinstance(field.type, GraphQLNonNull) else (
                field.type if field is not None else None)
            if (attribute is None or not isinstance(leaf, (GraphQLScalarType, GraphQLEnumType))
                    or any(d.node.arguments for d in details)):
                plan = None
                break
            assert plan is not None
            assert field is not None
            plan.append((key, attribute, leaf.serialize, isinstance(field.type, GraphQLNonNull)))
        self._plans[id(fields)] = (fields, plan)  # the set is kept alive with its plan: ids stay unique
        return plan

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Path | None,
                       grouped_field_set: GroupedFieldSet, position_context: Any) -> AwaitableOrValue[dict[str, Any]]:
        manager = self.middleware_manager
        plan = self._plan(parent_type, grouped_field_set) if manager is None or not manager.middlewares else None
        if plan is not None:
            done: dict[str, Any] = {}
            for key, attribute, serialize, non_null in plan:
                value = getattr(source_value, attribute)
                if value is not None:
                    value = serialize(value)
                    if value is None or value is Undefined:
                        break
                elif non_null:
                    break
                done[key] = value
            else:
                return done
        return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
