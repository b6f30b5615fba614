"""Admin context: jobs and DLQ tooling behind one service, used by the CLI and the HTTP API."""

from __future__ import annotations

from exchange.admin._requests import (
    DeriveJobRequest,
    ReconcileJobRequest,
    ReplayJobRequest,
    ResolveRequest,
    VerifyJobRequest,
)
from exchange.admin._routes import admin_routes
from exchange.admin._service import RESUMABLE, AdminService, JobKind
from exchange.admin._sweeper import JobSweeper

__all__ = (
    "RESUMABLE",
    "AdminService",
    "DeriveJobRequest",
    "JobKind",
    "JobSweeper",
    "ReconcileJobRequest",
    "ReplayJobRequest",
    "ResolveRequest",
    "VerifyJobRequest",
    "admin_routes",
)
