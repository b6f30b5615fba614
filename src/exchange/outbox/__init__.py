"""Outbox context: publishes pending outbox rows to Kafka (role ``publisher``)."""

from __future__ import annotations

from exchange.outbox._publisher import OutboxPublisher, outbox_stats

__all__ = ("OutboxPublisher", "outbox_stats")
