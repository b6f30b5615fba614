"""Operations: health, metrics, tracing, logging."""

from __future__ import annotations

from exchange.ops.logging import configure_logging, correlation_id_var
from exchange.ops.metrics import Metrics

__all__ = ("Metrics", "configure_logging", "correlation_id_var")
