"""Which offset is safe to commit, per partition, while records finish out of order.

Records of a partition are processed concurrently; the committed offset may only move
up to the lowest record not yet finished, so a crash never skips unfinished work
(it may redo finished work: the canonical insert is idempotent).
Accessed from the event loop and from the consumer thread's rebalance callback: every
method takes the lock.
"""

from __future__ import annotations

import heapq
import threading

__all__ = ("OffsetBook",)

TopicPartition = tuple[str, int]


class _Partition:
    __slots__ = ("committed", "done", "heap", "max_seen", "pending")

    def __init__(self) -> None:
        self.pending: set[int] = set()
        self.heap: list[int] = []
        self.max_seen = -1
        self.committed = -1  # next offset already committed (-1: nothing yet)
        self.done = 0

    def safe(self) -> int | None:
        while self.heap and self.heap[0] not in self.pending:
            heapq.heappop(self.heap)  # lazily drop finished offsets
        if self.heap:
            return self.heap[0]
        return self.max_seen + 1 if self.max_seen >= 0 else None


class OffsetBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[TopicPartition, _Partition] = {}

    def assign(self, tps: list[TopicPartition]) -> None:
        with self._lock:
            for tp in tps:
                self._parts.setdefault(tp, _Partition())

    def started(self, tp: TopicPartition, offset: int) -> bool:
        """Track a record; False when we do not own its partition (drop it: its owner will
        process it)."""
        with self._lock:
            part = self._parts.get(tp)
            if part is None:
                return False
            part.pending.add(offset)
            heapq.heappush(part.heap, offset)
            part.max_seen = max(part.max_seen, offset)
            return True

    def finished(self, tp: TopicPartition, offset: int) -> bool:
        """Mark done; False when the partition was revoked meanwhile (do not commit it)."""
        with self._lock:
            part = self._parts.get(tp)
            if part is None or offset not in part.pending:
                return False
            part.pending.discard(offset)
            part.done += 1
            return True

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets to commit now (only those that moved since the last commit)."""
        with self._lock:
            out: dict[TopicPartition, int] = {}
            for tp, part in self._parts.items():
                safe = part.safe()
                if safe is not None and safe > part.committed:
                    out[tp] = safe
            return out

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        with self._lock:
            for tp, offset in offsets.items():
                part = self._parts.get(tp)
                if part is not None:
                    part.committed = max(part.committed, offset)

    def revoke(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Forget partitions; returns their safe offsets for a final commit."""
        with self._lock:
            out: dict[TopicPartition, int] = {}
            for tp in tps:
                part = self._parts.pop(tp, None)
                if part is None:
                    continue
                safe = part.safe()
                if safe is not None and safe > part.committed:
                    out[tp] = safe
            return out

    def in_flight(self) -> int:
        with self._lock:
            return sum(len(p.pending) for p in self._parts.values())

    def owns(self, tp: TopicPartition) -> bool:
        with self._lock:
            return tp in self._parts
