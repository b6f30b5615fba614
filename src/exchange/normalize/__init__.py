"""Normalize context: events in, PII-free canonical rows out (role ``normalizer``)."""

from __future__ import annotations

from exchange.normalize._consumer import Normalizer
from exchange.normalize._dlq_tools import DlqEntryChanged, DlqEntryNotFound, DlqTools, NotReprocessable
from exchange.normalize._ledger import PIPELINE
from exchange.normalize._offsets import OffsetBook
from exchange.normalize._pipeline import STAGES, RecordProcessor, StageFailure, identifiers_from_raw, payload_keys
from exchange.normalize._queries import (
    Attempt,
    Canonical,
    DeadLetter,
    Processing,
    canonical_ids_for_source,
    record_processing,
)

__all__ = (
    "PIPELINE",
    "STAGES",
    "Attempt",
    "Canonical",
    "DeadLetter",
    "Processing",
    "DlqEntryChanged",
    "DlqEntryNotFound",
    "DlqTools",
    "NotReprocessable",
    "Normalizer",
    "OffsetBook",
    "RecordProcessor",
    "StageFailure",
    "canonical_ids_for_source",
    "identifiers_from_raw",
    "payload_keys",
    "record_processing",
)
