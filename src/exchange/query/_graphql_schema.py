"""The GraphQL schema: the original's ``patient`` and ``encounters``, extended compatibly.

``contracts/graphql/schema.graphql`` is this schema as served (a test prints and compares it, and
checks it still holds every type, field and argument of ``contracts/original/graphql/``).
Nested fields are resolved through per-request DataLoaders: a page of records costs one
statement for the page and one per nested kind of field, whatever the page size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.litestar import BaseContext

from exchange.adapters.jwt import Principal
from exchange.adapters.postgres import Database
from exchange.errors import Forbidden
from exchange.persons import person_record_counts, person_record_ids, persons_of_records, surviving_person
from exchange.query._cursor import Cursor, Kind, check_page_size
from exchange.query._journey import record_journey
from exchange.query._params import checked_token, checked_uuid, instant
from exchange.query._reads import Page, Reads, RecordRow

__all__ = ("GraphQLContext", "Query")

DEFAULT_PAGE = 100


@dataclass
class Loaders:
    """One request's batches: each ``load`` of a tick goes to the database as one statement."""

    reads: Reads
    records: DataLoader[str, RecordRow | None] = field(init=False)
    person_of: DataLoader[str, str | None] = field(init=False)
    person_counts: DataLoader[str, int] = field(init=False)
    token_counts: DataLoader[str, int] = field(init=False)

    def __post_init__(self) -> None:
        reads = self.reads

        async def records(ids: list[str]) -> list[RecordRow | None]:
            found = await reads.by_ids(ids)
            return [found.get(i) for i in ids]

        async def person_of(ids: list[str]) -> list[str | None]:
            found: dict[str, str] = await reads.connection_run(persons_of_records, ids)
            return [found.get(i) for i in ids]

        async def person_counts(ids: list[str]) -> list[int]:
            found: dict[str, int] = await reads.connection_run(person_record_counts, ids)
            return [found.get(i, 0) for i in ids]

        async def token_counts(tokens: list[str]) -> list[int]:
            found = await reads.count_by_tokens(tokens)
            return [found.get(t, 0) for t in tokens]

        self.records = DataLoader(records)
        self.person_of = DataLoader(person_of)
        self.person_counts = DataLoader(person_counts)
        self.token_counts = DataLoader(token_counts)


class GraphQLContext(BaseContext, kw_only=True):
    """What every resolver gets: the caller, the request's reads and batches, the database."""

    principal: Principal
    db: Database
    reads: Reads
    loaders: Loaders


Info = strawberry.Info[GraphQLContext, None]


def _after(value: str | None, kind: Kind) -> Cursor | None:
    return None if value is None else Cursor.decode(value, kind, "after")


@strawberry.type(description="A canonical record: a patient token and metadata, never an identifier.")
class Record:
    record_id: strawberry.ID
    source: str
    event_version: str
    record_kind: str | None
    schema_hint: str | None
    ingested_at: dt.datetime
    normalized_at: dt.datetime
    patient_token: strawberry.ID

    @classmethod
    def of(cls, row: RecordRow) -> Record:
        return cls(record_id=strawberry.ID(row.record_id), source=row.source, event_version=row.event_version,
                   record_kind=row.record_kind, schema_hint=row.schema_hint, ingested_at=row.ingested_at,
                   normalized_at=row.normalized_at, patient_token=strawberry.ID(row.patient_token))

    @strawberry.field(description="The patient token's other records and their count.")
    def patient(self) -> Patient:
        return Patient(patient_token=self.patient_token)

    @strawberry.field(description="The person this record was resolved to; null before person resolution.")
    async def person(self, info: Info) -> Person | None:
        found = await info.context.loaders.person_of.load(str(self.record_id))
        return None if found is None else Person(person_id=strawberry.ID(found))


@strawberry.type(description="A page of records; pass nextCursor as `after` for the next one (null: the last).")
class RecordPage:
    records: list[Record]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page) -> RecordPage:
        return cls(records=[Record.of(r) for r in page.rows], next_cursor=page.next_cursor)


async def _token_page(info: Info, token: str, first: int, after: str | None) -> RecordPage:
    page = await info.context.reads.by_patient_token(token, after=_after(after, "t"),
                                                     limit=check_page_size(first, "first"))
    return RecordPage.of(page)


@strawberry.type(description="A patient, known by its token only.")
class Patient:
    patient_token: strawberry.ID
    dob: str | None = strawberry.field(
        default=None, description="Always null: canonical rows hold no identifier (kept for the original schema).")

    @strawberry.field(description="How many records carry this token.")
    async def record_count(self, info: Info) -> int:
        return await info.context.loaders.token_counts.load(str(self.patient_token))

    @strawberry.field(description="This token's records, oldest first (one statement per page).")
    async def records(self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None) -> RecordPage:
        return await _token_page(info, str(self.patient_token), first, after)


@strawberry.type(description="Records of one person across sources (person resolution, ADR 0006).")
class Person:
    person_id: strawberry.ID

    @strawberry.field
    async def record_count(self, info: Info) -> int:
        return await info.context.loaders.person_counts.load(str(self.person_id))

    @strawberry.field(description="The person's records in record-id order (one statement per page).")
    async def records(self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None) -> RecordPage:
        limit = check_page_size(first, "first")
        cursor = _after(after, "r")
        ids: list[str] = await info.context.reads.connection_run(
            person_record_ids, str(self.person_id), after=None if cursor is None else str(cursor.record_id),
            limit=limit + 1)
        more = len(ids) > limit
        ids = ids[:limit]
        rows = await info.context.loaders.records.load_many(ids)
        next_cursor = Cursor.after_row("r", ids[-1]).encode() if more else None
        return RecordPage(records=[Record.of(r) for r in rows if r is not None], next_cursor=next_cursor)


@strawberry.type(description="The original schema's encounter: a record of kind encounter.")
class Encounter:
    encounter_id: strawberry.ID = strawberry.field(description="The record id.")
    patient_token: strawberry.ID
    facility_id: str | None = strawberry.field(description="The record's source.")
    admit_time: str | None = strawberry.field(
        default=None, description="Always null: canonical rows keep no payload fields.")
    discharge_time: str | None = strawberry.field(
        default=None, description="Always null: canonical rows keep no payload fields.")


@strawberry.type(description="One normalizer attempt from the ledger.")
class NormalizerAttempt:
    attempt_no: int
    status: str
    result: str | None
    error_type: str | None
    error_stage: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None


@strawberry.type(description="One outbox row of the record: pending until Kafka confirmed it.")
class OutboxDelivery:
    topic: str
    pending: bool
    created_at: dt.datetime
    published_at: dt.datetime | None
    attempts: int


@strawberry.type(description="One dead-letter entry of the record.")
class DeadLetter:
    error_type: str
    error_stage: str
    attempts: int
    failed_at: dt.datetime
    status: str


@strawberry.type(description="Where a record is (GET /v1/records/{id}/status): metadata only.")
class RecordStatus:
    record_id: strawberry.ID
    stage: str
    accepted_at: dt.datetime
    client: str | None
    raw_size_bytes: int
    raw_sha256: str
    outbox: list[OutboxDelivery]
    attempts: list[NormalizerAttempt]
    normalized_at: dt.datetime | None
    dead_letters: list[DeadLetter]
    latency_ms: float | None


@strawberry.type
class Query:
    @strawberry.field(description="The patient with this token; null when no record carries it. "
                                  "`dob` is always null.")
    async def patient(self, info: Info, patient_token: strawberry.ID) -> Patient | None:
        token = checked_token(str(patient_token), "patientToken")
        found = await info.context.loaders.token_counts.load(token)
        return Patient(patient_token=strawberry.ID(token)) if found else None

    @strawberry.field(description="The token's encounters, oldest first, at most `first` (default 100).")
    async def encounters(self, info: Info, patient_token: strawberry.ID, first: int = DEFAULT_PAGE) -> list[Encounter]:
        token = checked_token(str(patient_token), "patientToken")
        rows = await info.context.reads.encounters(token, limit=check_page_size(first, "first"))
        return [Encounter(encounter_id=strawberry.ID(r.record_id), patient_token=strawberry.ID(r.patient_token),
                          facility_id=r.source) for r in rows]

    @strawberry.field(description="One canonical record.")
    async def record(self, info: Info, record_id: strawberry.ID) -> Record | None:
        row = await info.context.loaders.records.load(checked_uuid(str(record_id), "recordId"))
        return None if row is None else Record.of(row)

    @strawberry.field(description="A source's records in [since, until), by ingestion time then id.")
    async def records(self, info: Info, source: str, since: dt.datetime | None = None,
                      until: dt.datetime | None = None, first: int = DEFAULT_PAGE,
                      after: str | None = None) -> RecordPage:
        page = await info.context.reads.by_source(
            source, since=instant(since, "since"), until=instant(until, "until"), after=_after(after, "t"),
            limit=check_page_size(first, "first"))
        return RecordPage.of(page)

    @strawberry.field(description="A patient token's records, oldest first.")
    async def patient_records(self, info: Info, patient_token: strawberry.ID, first: int = DEFAULT_PAGE,
                              after: str | None = None) -> RecordPage:
        return await _token_page(info, checked_token(str(patient_token), "patientToken"), first, after)

    @strawberry.field(description="A person (an id merged into another answers as the survivor).")
    async def person(self, info: Info, person_id: strawberry.ID) -> Person | None:
        survivor: str | None = await info.context.reads.connection_run(
            surviving_person, checked_uuid(str(person_id), "personId"))
        return None if survivor is None else Person(person_id=strawberry.ID(survivor))

    @strawberry.field(description="How many records a source has in [since, until).")
    async def record_count(self, info: Info, source: str, since: dt.datetime | None = None,
                           until: dt.datetime | None = None) -> int:
        return await info.context.reads.count_by_source(source, since=instant(since, "since"),
                                                        until=instant(until, "until"))

    @strawberry.field(description="Where a record is, as GET /v1/records/{id}/status answers it (scope admin).")
    async def record_status(self, info: Info, record_id: strawberry.ID) -> RecordStatus:
        principal = info.context.principal
        if "admin" not in principal.scopes:
            raise Forbidden("recordStatus: token lacks the required scope admin")
        key = checked_uuid(str(record_id), "recordId")
        j = await record_journey(info.context.db, key, principal)
        a = j.accepted
        return RecordStatus(
            record_id=strawberry.ID(j.record_id), stage=j.stage, accepted_at=a.accepted_at, client=a.client_id,
            raw_size_bytes=a.size_bytes, raw_sha256=a.sha256,
            outbox=[OutboxDelivery(topic=d.topic, pending=d.published_at is None, created_at=d.created_at,
                                   published_at=d.published_at, attempts=d.attempts) for d in j.outbox],
            attempts=[NormalizerAttempt(attempt_no=t.attempt_no, status=t.status, result=t.result,
                                        error_type=t.error_type, error_stage=t.error_stage, started_at=t.started_at,
                                        ended_at=t.ended_at) for t in j.attempts],
            normalized_at=None if j.canonical is None else j.canonical.normalized_at,
            dead_letters=[DeadLetter(error_type=d.error_type, error_stage=d.error_stage, attempts=d.attempts,
                                     failed_at=d.failed_at, status=d.status) for d in j.dead_letters],
            latency_ms=j.latency_ms)
