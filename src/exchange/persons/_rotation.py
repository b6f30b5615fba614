"""``exchange linkage rotate``: every record tokenized under the active linkage key, from raw
storage, then the other keys' tokens removed once that is verified complete.

Key rotation: an operator adds the new key as ``LINKAGE_HMAC_KEY``/``LINKAGE_KEY_ID`` and keeps the
old one as ``LINKAGE_PREVIOUS_*`` (normalizers then write tokens under both, so new records link to
old ones throughout), and runs this job. It walks the records in ``record_id`` order; each batch
reads the raw objects of the records lacking active-key tokens, tokenizes them and stores the
tokens in one transaction with the job's checkpoint, so a killed run resumes after its last batch.
Persons do not change: the same identifiers agree on the same recipes under any key. A record
with no person yet (canonical before linkage existed) is linked as the normalizer would link it:
the same job backfills. Only when every record has active-key tokens for the recipes it had under
the others are the others' tokens deleted; then the previous key can leave the configuration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exchange.adapters.objectstore import ObjectStore
from exchange.adapters.postgres import Database
from exchange.errors import ObjectNotFound
from exchange.events import NIL_UUID
from exchange.jobs import JobRun, Jobs
from exchange.linkage import TOKEN_BYTES, Field, KeyTokens
from exchange.persons._linker import LinkRequest, PersonLinker, mark_changed, store_tokens
from exchange.tokenize import InvalidIdentifiers, PatientIdentifiers, Tokenizer

__all__ = ("KeyRotation", "RotationProgress")

_FIRST = NIL_UUID  # a walk in record-id order starts after it
_PENDING_COUNT = """
SELECT count(*) FROM canonical_records c
WHERE NOT EXISTS (SELECT 1 FROM record_linkage r WHERE r.record_id = c.record_id AND r.key_id = $1)
"""
_PENDING = """
SELECT c.record_id::text AS record_id, c.raw_object_key, rp.person_id IS NOT NULL AS has_person
FROM canonical_records c LEFT JOIN record_persons rp ON rp.record_id = c.record_id
WHERE c.record_id > $1::uuid
  AND NOT EXISTS (SELECT 1 FROM record_linkage r WHERE r.record_id = c.record_id AND r.key_id = $2)
ORDER BY c.record_id LIMIT $3
"""
# A record is complete when, under the active key, it has a token for every recipe it has one for
# under another key (the recipes are what the identifiers allow; a key changes tokens, not recipes).
_INCOMPLETE = """
WITH missing AS (
    SELECT DISTINCT o.record_id FROM record_linkage o
    WHERE o.key_id <> $1 AND NOT EXISTS (
        SELECT 1 FROM record_linkage a WHERE a.record_id = o.record_id AND a.key_id = $1 AND a.recipes @> o.recipes)
)
SELECT (SELECT count(*) FROM missing) AS n,
       ARRAY(SELECT record_id::text FROM missing ORDER BY record_id LIMIT 20) AS examples
"""
_RETIRE = f"""
WITH old AS (
    DELETE FROM record_linkage WHERE key_id <> $1 RETURNING record_id, tokens
), gone AS (
    DELETE FROM linkage_tokens t
    USING (SELECT o.record_id, substring(o.tokens FROM g.i * {TOKEN_BYTES} + 1 FOR {TOKEN_BYTES}) AS token
           FROM old o CROSS JOIN LATERAL generate_series(0, length(o.tokens) / {TOKEN_BYTES} - 1) AS g(i)) x
    WHERE t.token = x.token AND t.record_id = x.record_id
    RETURNING 1
)
SELECT count(*) FROM gone
"""
_OTHER_KEYS = "SELECT DISTINCT key_id FROM record_linkage WHERE key_id <> $1 ORDER BY key_id"


@dataclass(slots=True)
class RotationProgress:
    total: int
    done: int = 0
    tokenized: int = 0
    linked: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    last: str = _FIRST
    started: float = field(default_factory=time.monotonic)

    @property
    def emitted(self) -> int:
        """What the shared progress bar counts: records tokenized (or linked) so far."""
        return self.tokenized + self.linked

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "done": self.done, "tokenized": self.tokenized, "linked": self.linked,
                "skipped": dict(self.skipped), "last": self.last}


class KeyRotation:
    def __init__(self, db: Database, store: ObjectStore, tokenizer: Tokenizer, linker: PersonLinker, jobs: Jobs, *,
                 active_key_id: str, identifiers: Callable[[bytes], PatientIdentifiers | str],
                 concurrency: int = 32) -> None:
        self._db = db
        self._store = store
        self._tokenizer = tokenizer
        self._linker = linker
        self._jobs = jobs
        self._active = active_key_id
        self._identifiers = identifiers
        self._reads = asyncio.Semaphore(concurrency)

    async def _tokens_of(self, raw_key: str, progress: RotationProgress) -> tuple[list[KeyTokens], frozenset[Field]]:
        """The record's active-key tokens and fields; none (counted as skipped, with why) when its raw
        object is gone or no longer yields identifiers."""
        try:
            async with self._reads:
                raw = await self._store.get(raw_key)
            ids = self._identifiers(raw)
            if isinstance(ids, str):
                progress.skipped[ids] = progress.skipped.get(ids, 0) + 1
                return [], frozenset()
            tokens = await self._tokenizer.tokens(ids)
        except ObjectNotFound:
            progress.skipped["RawObjectNotFound"] = progress.skipped.get("RawObjectNotFound", 0) + 1
            return [], frozenset()
        except InvalidIdentifiers:
            progress.skipped["InvalidIdentifiers"] = progress.skipped.get("InvalidIdentifiers", 0) + 1
            return [], frozenset()
        keyed: list[KeyTokens] = [b for b in tokens.linkage if b.key_id == self._active and b.digests]
        return keyed, frozenset(Field(f) for f in tokens.fields)

    async def run(self, job: JobRun, *, batch_size: int = 500, retire: bool = True,
                  on_progress: Callable[[RotationProgress], None] | None = None) -> dict[str, Any]:
        saved = await self._jobs.load_checkpoint(job) or {}
        async with self._db.connection() as conn:
            remaining = int(await conn.fetchval(_PENDING_COUNT, self._active))
        progress = RotationProgress(total=int(saved.get("done", 0)) + remaining, done=int(saved.get("done", 0)),
                                    tokenized=int(saved.get("tokenized", 0)), linked=int(saved.get("linked", 0)),
                                    skipped=dict(saved.get("skipped", {})), last=str(saved.get("last", _FIRST)))
        while True:
            async with self._db.connection() as conn:
                rows = await conn.fetch(_PENDING, progress.last, self._active, batch_size)
            if not rows:
                break
            computed = await asyncio.gather(*(self._tokens_of(row["raw_object_key"], progress) for row in rows))
            async with self._db.transaction() as conn:
                to_store: list[tuple[str, list[KeyTokens]]] = []
                to_link: list[LinkRequest] = []
                for row, (tokens, fields) in zip(rows, computed, strict=True):
                    if not tokens:
                        continue
                    if row["has_person"]:
                        to_store.append((row["record_id"], tokens))
                        progress.tokenized += 1
                    else:  # canonical before linkage existed: link it as the normalizer would
                        to_link.append(LinkRequest(row["record_id"], tuple(tokens), fields))
                        progress.linked += 1
                if to_store:
                    await store_tokens(conn, to_store)
                if to_link:
                    await self._linker.link(conn, to_link)
                progress.done += len(rows)
                progress.last = rows[-1]["record_id"]
                await Jobs.save_checkpoint(conn, job, progress.as_dict())
            if on_progress is not None:
                on_progress(progress)
        async with self._db.connection() as conn:
            check = await conn.fetchrow(_INCOMPLETE, self._active)
            others = [r["key_id"] for r in await conn.fetch(_OTHER_KEYS, self._active)]
        assert check is not None
        incomplete = int(check["n"])
        removed = 0
        if retire and incomplete == 0 and others:
            async with self._db.transaction() as conn:
                await mark_changed(conn)  # a plan that counted the retired tokens is checked again
                removed = int(await conn.fetchval(_RETIRE, self._active))
        return {
            "active_key_id": self._active, "records": progress.done, "tokenized": progress.tokenized,
            "linked": progress.linked, "skipped": progress.skipped, "incomplete": incomplete,
            "incomplete_examples": list(check["examples"]), "retired_key_ids": others if removed else [],
            "tokens_removed": removed, "verified": incomplete == 0,
        }
