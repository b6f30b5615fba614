"""What every local-stack service shares: its folder, its state, its errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

__all__ = ("ServiceName", "ServiceState", "StackError", "StackService")

ServiceName = Literal["postgres", "kafka", "s3"]


class StackError(RuntimeError):
    """A local-stack operation failed; the message names the service and its log file."""


@dataclass(frozen=True, slots=True)
class ServiceState:
    name: ServiceName
    state: Literal["running", "stopped"]
    address: str
    pid: int | None
    log: Path
    data: Path


class StackService(Protocol):
    name: ServiceName

    @property
    def log_file(self) -> Path: ...

    def check_prerequisites(self) -> None:
        """Raise :class:`StackError` at once if something to install is missing."""

    def start(self) -> None:
        """Start the server if it is not running (keeps existing data)."""

    def wait_healthy(self, timeout: float) -> None:
        """Block until the server answers; :class:`StackError` naming the log on timeout."""

    def stop(self) -> None:
        """Stop the server, keeping its data."""

    def status(self) -> ServiceState: ...
