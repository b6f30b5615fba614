"""What other contexts may ask about canonical records."""

from __future__ import annotations

from exchange.adapters.postgres import Connection

__all__ = ("canonical_ids_for_source",)


async def canonical_ids_for_source(conn: Connection, source: str) -> set[str]:
    rows = await conn.fetch("SELECT record_id::text AS record_id FROM canonical_records WHERE source = $1", source)
    return {r["record_id"] for r in rows}
