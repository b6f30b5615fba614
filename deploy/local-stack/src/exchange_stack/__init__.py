"""The local stack manager (PostgreSQL, Kafka, S3 as native processes), used by the CLI and tests."""

from __future__ import annotations

from exchange_stack._base import ServiceState, StackError
from exchange_stack.stack import SERVICES, Stack, StackPorts

__all__ = ("SERVICES", "ServiceState", "Stack", "StackError", "StackPorts")
