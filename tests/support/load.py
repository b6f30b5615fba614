"""Steady ingest load for fault tests: clients that keep sending records and retry a 503 with the
same Idempotency-Key and body, as a well-behaved client does.

Against a real server (``ServeProcess``): Litestar's in-process test client answers each
request on the caller's event loop thread before the coroutine yields, so its "concurrent"
clients would take turns, one request at a time, and starve every other task.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.app import DEV


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: Any


@dataclass
class SteadyIngest:
    """``workers`` clients posting v1 records of ``source`` until ``stop()``; each then finishes the
    record it is on (retrying until 202), so every key it used ends accepted exactly once."""

    client: httpx.AsyncClient
    source: str
    label: str
    workers: int = 8
    retry_pause_s: float = 0.05
    answers: list[Answer] = field(default_factory=list)
    accepted: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> record_id
    progress: asyncio.Event = field(default_factory=asyncio.Event)  # set at every 202
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(w)) for w in range(self.workers)]

    async def accepted_at_least(self, count: int) -> None:
        while len(self.accepted) < count:
            self.progress.clear()
            await self.progress.wait()

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    async def _worker(self, worker: int) -> None:
        n = 0
        while not self._stopping.is_set():
            n += 1
            key = f"{self.label}-{worker}-{n}"
            body = {"source": self.source, "record_type": "encounter",
                    "patient": {"first_name": f"Pat{worker}x{n}", "last_name": "Lee", "dob": "1980-02-03"},
                    "payload": {"worker": worker, "n": n}}
            while True:
                response = await self.client.post("/v1/ingest", json=body,
                                                  headers={**DEV, "Idempotency-Key": key})
                content = None
                with contextlib.suppress(ValueError):
                    content = response.json()
                self.answers.append(Answer(response.status_code, response.headers.get("content-type", ""), content))
                if response.status_code == 202:
                    self.accepted[key] = content["record_id"]
                    self.progress.set()
                    break
                if response.status_code != 503:
                    break  # recorded; the test fails on it
                await asyncio.sleep(self.retry_pause_s)

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for answer in self.answers:
            counts[answer.status] = counts.get(answer.status, 0) + 1
        return counts
