"""Coalesce concurrent single-item calls into one batch call (group commit).

Many concurrent tasks each need one small statement; PostgreSQL pays a fixed cost per
statement and per commit that dwarfs the row work. A :class:`Batcher` lets each task
``await submit(item)`` as if alone, while items submitted during one event-loop turn, or
while a batch is in flight, go to the database together as the next batch. There is no
timer: a lone item leaves at once (no added latency when idle), and batches grow only as
load does. While a batch is in flight, the next one opens only once it would be as large as
that one (or as large as a batch may be): without that rule, the first item to arrive after a
batch finishes went alone — a whole transaction for one item, holding a slot while the rest
queued behind it. The rule made single-item batches rare and raised both ingest and the
normalizer for less CPU a record (measured, docs/performance.md: "balanced batches").

Items with the same ``key`` never share a batch (a statement may not touch one row twice,
``ON CONFLICT DO UPDATE`` refuses it): a repeat waits for the next batch.
When a batch call raises, the items are retried one by one, so one bad item fails alone
and every other item gets the answer it would have had without batching.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

__all__ = ("Batcher",)

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    def __init__(
        self,
        run: Callable[[Sequence[In]], Awaitable[Sequence[Out]]],
        *,
        key: Callable[[In], Hashable],
        max_batch: int = 64,
        max_in_flight: int = 2,
        fail_together: tuple[type[Exception], ...] = (),
    ) -> None:
        """``run(items)`` returns one result per item, in order. An error of a type in
        ``fail_together`` (say, the database being down) fails the whole batch at once:
        one by one, every item would only wait out the same failure again."""
        self._run = run
        self._fail_together = fail_together
        self._key = key
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._open: list[int] = []  # the sizes of the batches in flight
        self._scheduled = False
        self._flushing: set[asyncio.Task[None]] = set()

    async def submit(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        # call_soon, not an immediate flush: the other tasks woken in this loop turn join in.
        if not self._scheduled and self._may_open():
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _may_open(self) -> bool:
        if not self._pending or len(self._open) >= self._max_in_flight:
            return False
        # Balanced batches: with one in flight, wait until this one would match it. The items
        # never wait longer than the batch in flight takes: when it finishes, they go.
        return not self._open or len(self._pending) >= min(self._max_batch, max(self._open))

    def _start_flush(self) -> None:
        self._scheduled = False
        if not self._may_open():
            return
        batch: list[tuple[In, asyncio.Future[Out]]] = []
        rest: list[tuple[In, asyncio.Future[Out]]] = []
        keys: set[Hashable] = set()
        for entry in self._pending:
            k = self._key(entry[0])
            if len(batch) < self._max_batch and k not in keys and not entry[1].cancelled():
                keys.add(k)
                batch.append(entry)
            elif not entry[1].cancelled():
                rest.append(entry)
        self._pending = rest
        if not batch:
            return
        self._open.append(len(batch))
        task = asyncio.get_running_loop().create_task(self._flush(batch))
        # The loop holds tasks weakly: keep this one until it is done (it resolves its futures).
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)
        self._schedule()

    async def _flush(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            try:
                results = await self._run_checked([item for item, _ in batch])
            except self._fail_together as exc:
                for _, future in batch:
                    _fail(future, exc)
                return
            except Exception as exc:  # noqa: BLE001 - every error reaches the waiters, never lost
                if len(batch) == 1:
                    _fail(batch[0][1], exc)
                else:  # one bad item must not fail the others: go one by one
                    await self._one_by_one(batch)
                return
            for (_, future), result in zip(batch, results, strict=True):
                _answer(future, result)
        except BaseException as exc:  # cancelled while in flight: every waiter learns it
            for _, future in batch:
                if isinstance(exc, Exception):
                    _fail(future, exc)
                elif not future.done():
                    future.cancel()
            raise
        finally:
            self._open.remove(len(batch))
            self._schedule()

    async def _one_by_one(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        for item, future in batch:
            if future.done():
                continue
            try:
                (result,) = await self._run_checked([item])
            except Exception as exc:  # noqa: BLE001 - handed to that item's waiter
                _fail(future, exc)
            else:
                _answer(future, result)

    async def _run_checked(self, items: list[In]) -> Sequence[Out]:
        results = await self._run(items)
        if len(results) != len(items):  # a bug in ``run``: never hand out answers by position then
            raise RuntimeError(f"batch call answered {len(results)} items for {len(items)}")
        return results


# A waiter may have gone (cancelled) by the time its answer comes: then there is no one to tell.
def _answer(future: asyncio.Future[Out], result: Out) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Out], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
