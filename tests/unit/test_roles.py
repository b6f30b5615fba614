from __future__ import annotations

import pytest

from exchange.roles import ALL_ROLES, Role, parse_roles


def test_all_means_every_role() -> None:
    assert parse_roles("all") == ALL_ROLES
    assert len(ALL_ROLES) == 6


def test_a_comma_list_selects_exactly_those_roles() -> None:
    assert parse_roles("ingest, normalizer") == {Role.INGEST, Role.NORMALIZER}


@pytest.mark.parametrize("text", ["", "bogus", "ingest,bogus", ","])
def test_unknown_or_empty_roles_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="role"):
        parse_roles(text)
