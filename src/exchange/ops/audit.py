"""``audit_log``: who did what, when, to which entity. Never patient data."""

from __future__ import annotations

from typing import Any

from exchange.adapters.postgres import Connection

__all__ = ("write_audit",)

_INSERT = """
INSERT INTO audit_log (correlation_id, actor, action, entity_type, entity_id, status, details)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
"""


async def write_audit(
    conn: Connection,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    status: str,
    details: dict[str, Any] | None = None,
    correlation_id: str | None = None,
) -> None:
    await conn.execute(_INSERT, correlation_id, actor, action, entity_type, entity_id, status, details or {})
