"""Persons context: linkage tokens stored, records grouped into persons (incrementally in the
normalizer's transaction, and by the rebuild job), and read back (ADR 0006)."""

from __future__ import annotations

from exchange.persons._linker import LINKAGE_LOCK, Linked, LinkPlan, LinkRequest, PersonLinker, apply_call
from exchange.persons._queries import (
    RecordLinkage,
    latest_model,
    person_record_counts,
    person_record_ids,
    person_records,
    persons_of_records,
    record_linkage,
    surviving_person,
)
from exchange.persons._rebuild import PersonsRebuild
from exchange.persons._rotation import KeyRotation, RotationProgress

__all__ = (
    "LINKAGE_LOCK",
    "KeyRotation",
    "LinkPlan",
    "LinkRequest",
    "Linked",
    "PersonLinker",
    "PersonsRebuild",
    "apply_call",
    "RecordLinkage",
    "RotationProgress",
    "latest_model",
    "person_record_counts",
    "person_record_ids",
    "person_records",
    "persons_of_records",
    "record_linkage",
    "surviving_person",
)
