"""The one backoff formula: capped exponential with full jitter.

Every retry loop (the supervisor's restarts, the outbox publisher and its rows, the
normalizer's record retries and dependency probes) waits ``backoff_delay(n, ...)`` before
its n-th retry: a uniform draw from ``[0, min(cap, base * 2**(n-1))]`` ("full jitter").
Drawing from the whole interval, not around its top, spreads the retries of many waiters
that failed together (a dependency outage) instead of sending them back in a herd; the
expected wait still doubles with each attempt until the cap, and no draw ever exceeds it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ("backoff_ceiling", "backoff_delay")

_MAX_DOUBLINGS = 62  # beyond this every sane cap is reached; keeps 2**n a small float


def backoff_ceiling(attempt: int, *, base_s: float, cap_s: float) -> float:
    """The upper end of the ``attempt``-th draw (attempt 1 is the first retry): the exponential, capped."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    doublings = min(attempt - 1, _MAX_DOUBLINGS)
    return max(0.0, min(cap_s, base_s * 2.0**doublings))


def backoff_delay(
    attempt: int, *, base_s: float, cap_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry ``attempt``: uniform in ``[0, backoff_ceiling(...)]``.

    ``rng`` returns a float in ``[0, 1)`` (the module's generator by default: jitter, not
    cryptography); tests pass their own.
    """
    return rng() * backoff_ceiling(attempt, base_s=base_s, cap_s=cap_s)
