"""Query context: the read API over canonical records (role ``query``)."""

from __future__ import annotations

from exchange.query._routes import query_routes

__all__ = ("query_routes",)
