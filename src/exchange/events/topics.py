"""The platform's Kafka topics: one list, used by settings defaults and the local stack."""

from __future__ import annotations

__all__ = ("DLQ_SUFFIX", "DLQ_V1", "DLQ_V2", "PLATFORM_TOPICS", "TOPIC_V1", "TOPIC_V2")

TOPIC_V1 = "record.ingested.v1"
TOPIC_V2 = "record.ingested.v2"
DLQ_SUFFIX = ".dlq"
DLQ_V1 = TOPIC_V1 + DLQ_SUFFIX
DLQ_V2 = TOPIC_V2 + DLQ_SUFFIX

PLATFORM_TOPICS: tuple[str, ...] = (TOPIC_V1, TOPIC_V2, DLQ_V1, DLQ_V2)
