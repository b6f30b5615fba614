"""Cyclic garbage collector settings for a long-running server.

Every batch allocates tens of thousands of short-lived containers (rows, tuples, token lists).
With CPython's default thresholds (a young collection every 700 net allocations, full ones
soon after) the collector kept walking the application's import-time heap — litestar,
OpenTelemetry, asyncpg codecs, hundreds of thousands of objects that live as long as the
process. Freezing that heap once the app is built moves it out of every later collection
(``gc.freeze``, as large Python web services do), and a higher young threshold collects
cycles in bigger, rarer steps; reference counting still frees everything acyclic at once.
"""

from __future__ import annotations

import gc

__all__ = ("YOUNG_THRESHOLD", "tune_collector")

YOUNG_THRESHOLD = 50_000


def tune_collector() -> None:
    """Call once the application is built, before serving."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
