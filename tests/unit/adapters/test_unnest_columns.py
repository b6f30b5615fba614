"""unnest_columns: slotted dataclass rows to one array per field, in field order."""

from __future__ import annotations

from dataclasses import dataclass

from exchange.adapters.postgres import unnest_columns


@dataclass(frozen=True, slots=True)
class Row:
    a: int
    b: str | None


def test_rows_become_one_array_per_field_in_declaration_order() -> None:
    assert unnest_columns([Row(1, "x"), Row(2, None)]) == [[1, 2], ["x", None]]


def test_no_rows_no_arrays() -> None:
    assert unnest_columns([]) == []
