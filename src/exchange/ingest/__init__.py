"""Ingest context: validated partner records in, raw object + outbox event out."""

from __future__ import annotations

from exchange.ingest._janitor import IdempotencyJanitor
from exchange.ingest._manifest import (
    Acceptance,
    ManifestEntry,
    StoredObject,
    manifest_for_source,
    record_acceptance,
    record_orphan,
    stored_objects,
)
from exchange.ingest._openapi import ingest_descriptions
from exchange.ingest._routes import ingest_routes
from exchange.ingest._service import IngestCommand, IngestOutcome, IngestService, purge_expired_keys

__all__ = (
    "Acceptance",
    "IdempotencyJanitor",
    "IngestCommand",
    "IngestOutcome",
    "IngestService",
    "ManifestEntry",
    "StoredObject",
    "ingest_descriptions",
    "ingest_routes",
    "manifest_for_source",
    "record_acceptance",
    "record_orphan",
    "purge_expired_keys",
    "stored_objects",
)
