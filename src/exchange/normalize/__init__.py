"""Normalize context: events in, PII-free canonical rows out (role ``normalizer``)."""

from __future__ import annotations

from exchange.normalize._consumer import Normalizer, backoff_delay
from exchange.normalize._ledger import PIPELINE
from exchange.normalize._offsets import OffsetBook
from exchange.normalize._pipeline import RecordProcessor, StageFailure, payload_keys

__all__ = ("PIPELINE", "Normalizer", "OffsetBook", "RecordProcessor", "StageFailure", "backoff_delay", "payload_keys")
