"""Outbox context: publishes pending outbox rows to Kafka (role ``publisher``)."""

from __future__ import annotations

from exchange.outbox._enqueue import OutboxMessage, enqueue
from exchange.outbox._publisher import OutboxPublisher, outbox_stats
from exchange.outbox._queries import Delivery, OutboxStatus, outbox_status_for_keys, record_deliveries

__all__ = (
    "Delivery",
    "OutboxMessage",
    "OutboxPublisher",
    "OutboxStatus",
    "enqueue",
    "outbox_stats",
    "outbox_status_for_keys",
    "record_deliveries",
)
