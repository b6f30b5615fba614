"""One event through the SPEC sequence: ledger start -> fetch raw -> verify -> parse ->
quality gates -> tokenize -> ONE transaction (canonical insert + ledger success).

Every failure becomes a :class:`StageFailure` with a stage, a stable error type, a
sanitized message (rules and field paths, never values), whether it is transient, and, when
a dependency was unavailable, which one (the consumer then asks whether that is an outage,
which no record is charged for, or the record's own failure).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import msgspec
from opentelemetry import trace

from exchange.adapters.objectstore import ObjectStore
from exchange.adapters.postgres import Database, unnest_columns
from exchange.errors import (
    DatabaseUnavailable,
    DependencyUnavailable,
    ObjectNotFound,
    ObjectStoreUnavailable,
    TokenizerUnavailable,
)
from exchange.events import RecordIngested, RecordIngestedV2, decode_event
from exchange.normalize._ledger import AttemptRef, DeliveryInfo, Ledger
from exchange.ops.tracing import tracer
from exchange.persons import LinkRequest, PersonLinker, apply_call
from exchange.runtime.batcher import Batcher
from exchange.runtime.gate import Probe
from exchange.tokenize import InvalidIdentifiers, PatientIdentifiers, Tokenizer, TokenSet, dob_problem
from exchange.web.validation import field_and_rule

__all__ = ("STAGES", "Processed", "RecordProcessor", "StageFailure", "identifiers_from_raw", "payload_keys")

Stage = Literal["decode", "ledger", "fetch", "verify", "parse", "quality", "tokenize", "write"]
STAGES: tuple[str, ...] = get_args(Stage)
"""Every stage a failure (and so a DLQ entry) can name, in pipeline order."""


class StageFailure(Exception):
    def __init__(
        self, stage: Stage, error_type: str, message: str, *, transient: bool, dependency: str | None = None
    ) -> None:
        super().__init__(f"{stage}: {error_type}: {message}")
        self.stage = stage
        self.error_type = error_type
        self.message = message
        self.transient = transient
        self.dependency = dependency
        """The dependency that was unavailable (``DependencyUnavailable.dependency``), if that was the failure."""


def _unavailable(stage: Stage, exc: DependencyUnavailable, message: str) -> StageFailure:
    return StageFailure(stage, type(exc).__name__, message, transient=True, dependency=exc.dependency)


@dataclass(frozen=True, slots=True)
class Processed:
    result: Literal["inserted", "duplicate"]
    attempt: AttemptRef
    accepted_at: dt.datetime | None = None
    """When ingest accepted an inserted record (its event's ``occurred_at``): where its end-to-end latency
    starts."""


class _RawPatient(msgspec.Struct):
    dob: str
    first_name: str | None = None
    last_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    ssn: str | None = None


class _RawRecord(msgspec.Struct):
    """Lenient view of a raw object: v1 or v2 shape (replay may emit either version)."""

    patient: _RawPatient
    payload: dict[str, Any]
    source: str | None = None
    record_type: str | None = None
    record_kind: str | None = None
    schema_hint: str | None = None


_raw_decoder = msgspec.json.Decoder(_RawRecord)
_json = msgspec.json.Encoder()

# Payload keys that name identifiers are left out of `meta` (HIPAA Safe Harbor classes).
_IDENTIFIER_KEY = re.compile(
    r"(name|ssn|social|dob|birth|address|street|city|zip|postal|phone|fax|email|mrn|medical_record|member|"
    r"beneficiary|account|license|licence|certificate|vin|vehicle|plate|device|serial|url|biometric|"
    r"fingerprint|photo|face|patient|identifier|^ip$|ip_addr|_id$|^id$)",
    re.IGNORECASE,
)
_SAFE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def payload_keys(payload: dict[str, Any]) -> list[str]:
    """The payload's top-level key names that are neither identifiers nor odd strings."""
    return sorted(k for k in payload if _SAFE_KEY.match(k) and not _IDENTIFIER_KEY.search(k))


def _ingested_at(occurred_at: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(occurred_at)
    except ValueError:
        raise StageFailure("decode", "InvalidEvent", "occurred_at is not RFC 3339", transient=False) from None
    if moment.tzinfo is None:
        raise StageFailure("decode", "InvalidEvent", "occurred_at has no time zone", transient=False)
    return moment


# The success path is ONE statement for a batch of records, so it is atomic without
# BEGIN/COMMIT and its fixed cost (a round-trip, a statement, a commit) is paid once per
# batch: canonical insert (idempotent), the derived patient index, the manifest's state
# (``enqueued -> canonicalized``, inlined here for the round-trip) and the ledger
# success. A redelivered record (already canonical) only updates the ledger.
_WRITE_STEPS = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int[])
        WITH ORDINALITY
        AS i(record_id, source, raw_object_key, raw_sha256, normalized, ingested_at, correlation_id, event_version,
             record_kind, schema_hint, token_key_id, patient_token, attempt_no, n)
), canon AS (
    INSERT INTO canonical_records
        (record_id, source, raw_object_key, raw_sha256, normalized, ingested_at, normalized_at, correlation_id,
         event_version, record_kind, schema_hint, token_key_id)
    SELECT record_id, source, raw_object_key, raw_sha256, normalized::jsonb, ingested_at, now(), correlation_id,
           event_version, record_kind, schema_hint, token_key_id
    FROM input
    ON CONFLICT (record_id) DO NOTHING
    RETURNING record_id, normalized_at
), idx AS (
    INSERT INTO derived_patient_record_index
        (patient_token, record_id, source, event_version, record_kind, schema_hint, ingested_at, normalized_at)
    SELECT i.patient_token, c.record_id, i.source, i.event_version, i.record_kind, i.schema_hint, i.ingested_at,
           c.normalized_at
    FROM canon c JOIN input i USING (record_id)
    ON CONFLICT (record_id) DO NOTHING
    RETURNING 1
), manifest AS (
    UPDATE raw_object_manifest m SET state = 'canonicalized', updated_at = now()
    FROM canon c WHERE m.record_id = c.record_id AND m.state <> 'canonicalized'
    RETURNING 1
), state AS (
    UPDATE processing_stage_state s
    SET status = 'succeeded', last_success_at = now(), next_retry_at = NULL, last_error_type = NULL,
        last_error_message = NULL, last_error_stage = NULL, updated_at = now()
    FROM input i WHERE s.record_id = i.record_id AND s.pipeline = 'normalizer'
    RETURNING 1
), attempt AS (
    UPDATE processing_attempts a
    SET status = 'succeeded', ended_at = now(),
        result = CASE WHEN c.record_id IS NOT NULL THEN 'inserted' ELSE 'duplicate' END
    FROM input i LEFT JOIN canon c USING (record_id)
    WHERE a.record_id = i.record_id AND a.pipeline = 'normalizer' AND a.attempt_no = i.attempt_no
    RETURNING 1
)"""
_WRITE = _WRITE_STEPS + """
SELECT c.record_id IS NOT NULL AS inserted
FROM input i LEFT JOIN canon c USING (record_id)
ORDER BY i.n
"""
# The success path with the batch's persons: ``linkage_apply`` (the person step's checked write)
# called in the same statement, so the linkage lock it takes ends with this statement's commit;
# it runs after the other writes (its condition reads them first), so the lock covers only itself
# and the commit.
_WRITE_LINKED = _WRITE_STEPS + f""", linked AS MATERIALIZED (
    SELECT {apply_call(14)} AS ok
    WHERE (SELECT count(*) FROM idx) + (SELECT count(*) FROM manifest) + (SELECT count(*) FROM state)
        + (SELECT count(*) FROM attempt) >= 0
)
SELECT c.record_id IS NOT NULL AS inserted
FROM input i LEFT JOIN canon c USING (record_id) CROSS JOIN linked
ORDER BY i.n
"""
_DUPLICATE = """
WITH state AS (
    UPDATE processing_stage_state
    SET status = 'succeeded', last_success_at = now(), next_retry_at = NULL, updated_at = now()
    WHERE record_id = $1 AND pipeline = 'normalizer'
)
UPDATE processing_attempts SET status = 'succeeded', ended_at = now(), result = 'duplicate'
WHERE record_id = $1 AND pipeline = 'normalizer' AND attempt_no = $2
"""


class RecordProcessor:
    def __init__(self, db: Database, store: ObjectStore, tokenizer: Tokenizer, linker: PersonLinker) -> None:
        self._db = db
        self._store = store
        self._tokenizer = tokenizer
        self._linker = linker
        self.ledger = Ledger(db)
        self._writes: Batcher[_Write, bool] = Batcher(
            self._write_many, key=lambda w: w.row.record_id.lower(), fail_together=(DatabaseUnavailable,)
        )
        self._last_read: str | None = None  # the key of the last raw object read, for the store's probe

    def probes(self) -> dict[str, Probe]:
        """How to tell, per dependency, whether it works for this pipeline right now (``DependencyGate``)."""
        return {"database": self._db.ping, "object_store": self._probe_store, "tokenizer": self._tokenizer.ping}

    async def _probe_store(self) -> None:
        """Read an object, not only list the bucket: a store can answer listings while its reads
        fail (SeaweedFS does for seconds while it stops), and reads are what records need. The
        last object a record read is one that exists; before the first read, a listing will do."""
        key = self._last_read
        if key is None:
            await self._store.ping()
            return
        with contextlib.suppress(ObjectNotFound):  # removed since (a repair): the store answered
            await self._store.get(key)

    @staticmethod
    def decode(value: bytes) -> RecordIngested:
        try:
            return decode_event(value)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            field, rule = field_and_rule(str(exc)) if isinstance(exc, msgspec.ValidationError) else ("", "not JSON")
            raise StageFailure("decode", "InvalidEvent", f"event {field or 'body'}: {rule}", transient=False) from None

    async def start(self, info: DeliveryInfo) -> AttemptRef:
        try:
            return await self.ledger.start(info)
        except DatabaseUnavailable as exc:
            raise _unavailable("ledger", exc, "database unavailable") from None

    async def process(self, event: RecordIngested, attempt: AttemptRef) -> Processed:
        if attempt.already_canonical:
            # Redelivery of a finished record: no fetch, no tokenizer call.
            try:
                async with self._db.connection() as conn:
                    await conn.execute(_DUPLICATE, event.record_id, attempt.attempt_no)
            except DatabaseUnavailable as exc:
                raise _unavailable("write", exc, "database unavailable") from None
            return Processed("duplicate", attempt)
        # The record's span (the consumer's) marks the fetch and the tokenizer with events and
        # the database write with a child span: each span is a measurable share of the
        # normalizer's CPU a record, events are cheaper (docs/performance.md).
        # A remote tokenizer's own server span still joins the trace (traceparent is sent).
        record_span = trace.get_current_span()
        raw = await self._fetch(event)
        record_span.add_event("raw object fetched", {"size_bytes": len(raw)})
        self._verify(event, raw)
        record = self.parse(raw)
        ids = self.identifiers(record)
        tokens = await self._tokenize(ids)
        record_span.add_event("patient tokenized", {"token_key_id": self._tokenizer.key_id})
        with tracer.start_as_current_span("canonical write", record_exception=False) as span:
            span.set_attribute("db.system", "postgresql")
            return await self._write(event, record, tokens, attempt)

    async def _fetch(self, event: RecordIngested) -> bytes:
        if event.raw_object.bucket != self._store.bucket:
            raise StageFailure("fetch", "UnknownBucket", "raw object is in an unknown bucket", transient=False)
        try:
            raw = await self._store.get(event.raw_object.key)
        except ObjectNotFound:
            raise StageFailure("fetch", "RawObjectNotFound", "raw object not found", transient=False) from None
        except ObjectStoreUnavailable as exc:
            raise _unavailable("fetch", exc, "object store unavailable") from None
        self._last_read = event.raw_object.key
        return raw

    @staticmethod
    def _verify(event: RecordIngested, raw: bytes) -> None:
        if len(raw) != event.raw_object.size_bytes:
            raise StageFailure("verify", "SizeMismatch", "raw object size differs from the event", transient=False)
        if hashlib.sha256(raw).hexdigest() != event.raw_object.sha256:
            raise StageFailure("verify", "Sha256Mismatch", "raw object sha256 differs from the event",
                               transient=False)

    @staticmethod
    def parse(raw: bytes) -> _RawRecord:
        try:
            return _raw_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            field, rule = field_and_rule(str(exc))
            raise StageFailure("parse", "InvalidRecordShape", f"{field or 'record'}: {rule}", transient=False) from None
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise StageFailure("parse", "InvalidJson", "raw object is not valid JSON", transient=False) from None

    @staticmethod
    def identifiers(record: _RawRecord) -> PatientIdentifiers:
        p = record.patient
        given = p.given_name if p.given_name is not None else p.first_name
        family = p.family_name if p.family_name is not None else p.last_name
        if given is None or family is None:
            raise StageFailure("parse", "InvalidRecordShape", "patient: names are missing", transient=False)
        # Quality gates before anything is written.
        try:
            born = dt.date.fromisoformat(p.dob)
        except ValueError:
            raise StageFailure("quality", "InvalidDob", "patient.dob: not a YYYY-MM-DD date", transient=False) from None
        if (problem := dob_problem(born)) is not None:
            raise StageFailure("quality", "ImplausibleDob", f"patient.dob: {problem}", transient=False)
        return PatientIdentifiers(given_name=given, family_name=family, dob=p.dob, ssn=p.ssn)

    async def _tokenize(self, ids: PatientIdentifiers) -> TokenSet:
        try:
            return await self._tokenizer.tokens(ids)
        except InvalidIdentifiers as exc:
            raise StageFailure("tokenize", "InvalidIdentifiers", f"{exc.field}: {exc.problem}",
                               transient=False) from None
        except TokenizerUnavailable as exc:
            # Our own message ("tokenizer non-200 (503)"): never echoes the request.
            raise _unavailable("tokenize", exc, str(exc)) from None

    async def _write(self, event: RecordIngested, record: _RawRecord, tokens: TokenSet,
                     attempt: AttemptRef) -> Processed:
        token = tokens.patient_token
        is_v2 = isinstance(event, RecordIngestedV2)
        version = "2" if is_v2 else "1"
        record_kind = event.record_kind if isinstance(event, RecordIngestedV2) else None
        schema_hint = event.schema_hint if isinstance(event, RecordIngestedV2) else None
        meta: dict[str, Any] = {
            "source": event.source,
            "event_version": version,
            "payload_keys": payload_keys(record.payload),
            "token_key_id": self._tokenizer.key_id,
        }
        if is_v2:
            meta["record_kind"] = record_kind
            meta["schema_hint"] = schema_hint
        elif record.record_type is not None:
            meta["record_type"] = record.record_type
        row = _CanonicalRow(
            record_id=event.record_id, source=event.source, raw_object_key=event.raw_object.key,
            raw_sha256=event.raw_object.sha256,
            normalized=_json.encode({"patient_token": token, "meta": meta}).decode(),
            ingested_at=_ingested_at(event.occurred_at), correlation_id=event.correlation_id,
            event_version=version, record_kind=record_kind, schema_hint=schema_hint,
            token_key_id=self._tokenizer.key_id, patient_token=token, attempt_no=attempt.attempt_no,
        )
        link = LinkRequest(
            record_id=event.record_id,
            tokens=tokens.linkage,
            fields=tokens.fields,
        )
        try:
            inserted = await self._writes.submit(_Write(row, link))
        except DatabaseUnavailable as exc:
            raise _unavailable("write", exc, "database unavailable") from None
        result: Literal["inserted", "duplicate"] = "inserted" if inserted else "duplicate"
        return Processed(result, attempt, row.ingested_at if inserted else None)

    async def _write_many(self, writes: Sequence[_Write]) -> list[bool]:
        # The canonical rows and their persons commit together (a record is never canonical
        # without its person, and a redelivery finds the person it already has): one statement
        # that writes the rows and calls ``linkage_apply`` (``PersonLinker.write_linked``).
        result = await self._linker.write_linked([w.link for w in writes], _WRITE_LINKED, _WRITE,
                                                 unnest_columns([w.row for w in writes]))
        return [bool(r["inserted"]) for r in result]


@dataclass(frozen=True, slots=True)
class _Write:
    row: _CanonicalRow
    link: LinkRequest


@dataclass(frozen=True, slots=True)
class _CanonicalRow:
    """One record's share of the batched canonical write, in ``_WRITE``'s column order."""

    record_id: str
    source: str
    raw_object_key: str
    raw_sha256: str
    normalized: str
    ingested_at: dt.datetime
    correlation_id: str
    event_version: str
    record_kind: str | None
    schema_hint: str | None
    token_key_id: str
    patient_token: str
    attempt_no: int


def identifiers_from_raw(raw: bytes) -> PatientIdentifiers | str:
    """A raw object's patient identifiers as the normalizer reads them, or the error type that
    keeps it from them (for jobs that re-tokenize from raw storage)."""
    try:
        return RecordProcessor.identifiers(RecordProcessor.parse(raw))
    except StageFailure as failure:
        return failure.error_type
