"""The roles one ``exchange serve`` process can host."""

from __future__ import annotations

from enum import StrEnum

__all__ = ("ALL_ROLES", "BACKGROUND_ROLES", "Role", "parse_roles")


class Role(StrEnum):
    INGEST = "ingest"
    TOKENIZER = "tokenizer"
    PUBLISHER = "publisher"
    NORMALIZER = "normalizer"
    ADMIN = "admin"
    QUERY = "query"


ALL_ROLES: frozenset[Role] = frozenset(Role)
BACKGROUND_ROLES: frozenset[Role] = frozenset({Role.PUBLISHER, Role.NORMALIZER})


def parse_roles(text: str) -> frozenset[Role]:
    """``all`` or a comma list of role names; raises ValueError naming the bad one."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("no role given; use all or a comma list of " + ", ".join(r.value for r in Role))
    if names == ["all"]:
        return ALL_ROLES
    roles: set[Role] = set()
    for name in names:
        try:
            roles.add(Role(name))
        except ValueError:
            raise ValueError(
                f"unknown role {name!r}; use all or a comma list of " + ", ".join(r.value for r in Role)
            ) from None
    return frozenset(roles)
