"""A record's journey: where one record is, from the facts each context keeps about it.

Each context answers for its own tables (ingest: acceptance and raw object; outbox: its rows;
normalize: the ledger, the canonical row, the DLQ), so nothing here names another context's
table. What is answered is metadata only: no identifier, no error message, no payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from exchange.adapters.jwt import Principal
from exchange.adapters.postgres import Database
from exchange.errors import InvalidRequest
from exchange.ingest import Acceptance, record_acceptance
from exchange.normalize import Attempt, Canonical, DeadLetter, record_processing
from exchange.outbox import Delivery, record_deliveries

__all__ = ("Journey", "RecordNotFound", "Stage", "may_see", "record_journey")

Stage = Literal["canonical", "dead_lettered", "retrying", "processing", "published", "accepted", "orphaned"]


class RecordNotFound(InvalidRequest):
    """No such record -- or not one the caller sent: the two answer alike, so a client cannot
    probe for other clients' record ids."""

    def __init__(self, record_id: str) -> None:
        super().__init__(f"no record {record_id} sent by this client", status=404, type_slug="not-found")


@dataclass(frozen=True, slots=True)
class Journey:
    record_id: str
    stage: Stage
    """``canonical``, ``dead_lettered``, ``retrying``, ``processing``, ``published``, ``accepted`` or ``orphaned``."""
    accepted: Acceptance
    outbox: list[Delivery]
    attempts: list[Attempt]
    canonical: Canonical | None
    dead_letters: list[DeadLetter]
    latency_ms: float | None
    """Accepted to canonical row (or to the first dead letter); None while neither happened."""


def _stage(accepted: Acceptance, outbox: list[Delivery], attempts: list[Attempt], canonical: Canonical | None,
           dead: list[DeadLetter]) -> Stage:
    if canonical is not None:
        return "canonical"
    if any(d.status == "open" for d in dead):
        return "dead_lettered"
    if attempts:
        last = attempts[-1]
        return "retrying" if last.status == "failed" and last.transient else "processing"
    if accepted.state == "orphaned":
        return "orphaned"
    if outbox and all(d.published_at is not None for d in outbox):
        return "published"
    return "accepted"


def may_see(principal: Principal, accepted: Acceptance) -> bool:
    """An admin sees every record; a client (``ingest:write``) the records it sent."""
    return "admin" in principal.scopes or (
        "ingest:write" in principal.scopes and accepted.client_id == principal.subject)


async def record_journey(db: Database, record_id: str, principal: Principal) -> Journey:
    """Where ``record_id`` is, for ``principal``; ``RecordNotFound`` when it may not see it."""
    async with db.connection() as conn:
        accepted = await record_acceptance(conn, record_id)
        if accepted is None or not may_see(principal, accepted):
            raise RecordNotFound(record_id)
        outbox = await record_deliveries(conn, record_id)
        processing = await record_processing(conn, record_id)
    canonical, dead = processing.canonical, processing.dead_letters
    end = canonical.normalized_at if canonical is not None else (dead[0].failed_at if dead else None)
    latency = None if end is None else round((end - accepted.accepted_at).total_seconds() * 1000, 3)
    return Journey(record_id, _stage(accepted, outbox, processing.attempts, canonical, dead), accepted, outbox,
                   processing.attempts, canonical, dead, latency)
