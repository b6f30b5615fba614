"""Runtime: supervised background tasks, graceful shutdown, the requests-first gate, the dependency
gate, the batcher and the one backoff formula."""

from __future__ import annotations

from exchange.runtime.gate import DependencyGate
from exchange.runtime.load import RequestLoad
from exchange.runtime.supervisor import BackgroundComponent, Supervisor, TaskStatus, sleep_unless_stopped

__all__ = (
    "BackgroundComponent",
    "DependencyGate",
    "RequestLoad",
    "Supervisor",
    "TaskStatus",
    "sleep_unless_stopped",
)
