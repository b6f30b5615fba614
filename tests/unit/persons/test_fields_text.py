from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from exchange.linkage import FIELDS, Field
from exchange.persons._linker import fields_of, fields_text


@given(st.frozensets(st.sampled_from(FIELDS)))
def test_stored_fields_read_back_as_they_were(fields: frozenset[Field]) -> None:
    # The person step stores a record's fields as text and reads them back for every holder.
    assert fields_of(fields_text(fields)) == fields
