"""Runtime: supervised background tasks, graceful shutdown, the requests-first gate and the batcher."""

from __future__ import annotations

from exchange.runtime.load import RequestLoad
from exchange.runtime.supervisor import BackgroundComponent, Supervisor, TaskStatus, sleep_unless_stopped

__all__ = ("BackgroundComponent", "RequestLoad", "Supervisor", "TaskStatus", "sleep_unless_stopped")
