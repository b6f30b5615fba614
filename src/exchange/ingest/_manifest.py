"""The raw-object manifest's state transitions, offered to other contexts."""

from __future__ import annotations

from exchange.adapters.postgres import Connection

__all__ = ("mark_canonicalized",)

_CANONICALIZED = """
UPDATE raw_object_manifest SET state = 'canonicalized', updated_at = now()
WHERE record_id = $1 AND state <> 'canonicalized'
"""


async def mark_canonicalized(conn: Connection, record_id: str) -> None:
    """Called inside the normalizer's canonical-write transaction."""
    await conn.execute(_CANONICALIZED, record_id)
