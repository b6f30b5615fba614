"""Run a derived dataset's rebuild as a resumable job, or verify it against canonical rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exchange.adapters.postgres import Database
from exchange.derive._datasets import DATASETS, FIRST, Dataset
from exchange.jobs import JobRun, Jobs
from exchange.persons import PersonsRebuild

__all__ = ("NAMES", "DeriveParams", "DeriveProgress", "Deriver")

MAX_BATCH = 50_000
# Batched datasets walk canonical rows; persons are recomputed as a whole (components of links).
NAMES: tuple[str, ...] = (*sorted(DATASETS), PersonsRebuild.name)


@dataclass(frozen=True, slots=True)
class DeriveParams:
    dataset: str
    dry_run: bool = False
    batch_size: int = 1000

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeriveParams:
        return cls(dataset=str(data["dataset"]), dry_run=bool(data.get("dry_run", False)),
                   batch_size=int(data.get("batch_size", 1000)))


@dataclass(slots=True)
class DeriveProgress:
    scanned: int = 0
    changed: int = 0
    last: str = FIRST

    def as_dict(self) -> dict[str, Any]:
        return {"scanned": self.scanned, "changed": self.changed, "last": self.last}


class Deriver:
    def __init__(self, db: Database, jobs: Jobs) -> None:
        self._db = db
        self._jobs = jobs

    @staticmethod
    def dataset(name: str) -> Dataset:
        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; one of {', '.join(sorted(DATASETS))}")
        return DATASETS[name]

    async def run(self, job: JobRun, *, on_progress: Callable[[DeriveProgress], None] | None = None
                  ) -> dict[str, Any]:
        """Rebuild batch by batch; each batch commits with its checkpoint, so a killed run resumes."""
        params = DeriveParams.from_dict(job.params)
        if params.dataset == PersonsRebuild.name:
            return await PersonsRebuild(self._db).run(dry_run=params.dry_run)
        dataset = self.dataset(params.dataset)
        saved = await self._jobs.load_checkpoint(job) or {}
        progress = DeriveProgress(int(saved.get("scanned", 0)), int(saved.get("changed", 0)),
                                  str(saved.get("last", FIRST)))
        while True:
            async with self._db.transaction() as conn:
                batch = await dataset.rebuild(conn, progress.last, params.batch_size, dry_run=params.dry_run)
                if batch.last is None:
                    progress.changed += await dataset.tail(conn, progress.last, dry_run=params.dry_run)
                else:
                    progress.scanned += batch.scanned
                    progress.changed += batch.changed
                    progress.last = batch.last
                await Jobs.save_checkpoint(conn, job, progress.as_dict())
            if on_progress is not None:
                on_progress(progress)
            if batch.last is None:
                break
        return {"dataset": dataset.name, "scanned": progress.scanned, "changed": progress.changed,
                "dry_run": params.dry_run}

    async def verify(self, name: str) -> dict[str, Any]:
        if name == PersonsRebuild.name:
            return await PersonsRebuild(self._db).verify()
        dataset = self.dataset(name)
        async with self._db.connection() as conn:
            report = await dataset.verify(conn)
        report["dataset"] = dataset.name
        report["agrees"] = not (report["missing_count"] or report["extra_count"] or report["differing_count"])
        return report
