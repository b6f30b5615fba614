"""Admin context: jobs and DLQ tooling behind one service, used by the CLI and the HTTP API."""

from __future__ import annotations

from exchange.admin._routes import admin_routes
from exchange.admin._service import AdminService, JobKind

__all__ = ("AdminService", "JobKind", "admin_routes")
