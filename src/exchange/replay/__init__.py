"""Replay context: replay, verify and reconcile (+repair) from raw storage, as resumable jobs."""

from __future__ import annotations

from exchange.replay._raw import EmitVersion, infer_version
from exchange.replay._reconcile import MAX_WINDOW_S, QUARANTINE_PREFIX, ReconcileOptions, Reconciler
from exchange.replay._replay import MAX_LIMIT, Progress, ReplayParams, ReplayService

__all__ = (
    "MAX_LIMIT",
    "MAX_WINDOW_S",
    "QUARANTINE_PREFIX",
    "EmitVersion",
    "Progress",
    "ReconcileOptions",
    "Reconciler",
    "ReplayParams",
    "ReplayService",
    "infer_version",
)
