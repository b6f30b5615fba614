"""Runtime: supervised background tasks and graceful shutdown."""

from __future__ import annotations

from exchange.runtime.load import RequestLoad
from exchange.runtime.supervisor import BackgroundComponent, Supervisor, TaskStatus, sleep_unless_stopped

__all__ = ("BackgroundComponent", "RequestLoad", "Supervisor", "TaskStatus", "sleep_unless_stopped")
