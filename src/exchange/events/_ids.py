"""Time-ordered UUIDs (version 7, RFC 9562): record ids sort by acceptance time.

Within one millisecond the 12-bit ``rand_a`` field is a counter (RFC 9562 method 1),
so ids made by one process are strictly increasing.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ("NIL_UUID", "REPLAY_CORRELATION_PREFIX", "uuid7")

NIL_UUID = "00000000-0000-0000-0000-000000000000"
"""Sorts before every other UUID: where a walk in record-id order starts."""

REPLAY_CORRELATION_PREFIX = "replay-"
"""A replayed event's ``correlation_id`` is this prefix and its record id (deterministic)."""

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    global _last_ms, _counter  # noqa: PLW0603 - process-wide monotonic state, guarded by _lock
    with _lock:
        millis = time.time_ns() // 1_000_000
        if millis > _last_ms:
            _last_ms, _counter = millis, int.from_bytes(os.urandom(2), "big") & 0x7FF
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms, _counter = _last_ms + 1, 0
        millis, counter = _last_ms, _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)
