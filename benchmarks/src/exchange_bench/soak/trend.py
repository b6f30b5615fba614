"""The soak's judgement, pure: least-squares slopes of the sampled series and the verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ("SERIES", "Tolerances", "slope_per_minute", "verdict")

SERIES = ("rss_mb", "fds", "tcp_sockets", "pg_connections", "outbox_backlog", "consumer_lag")
"""What a sample holds, besides its time and the task restarts so far."""


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of ``(seconds, value)`` points, in value per minute (0 for fewer
    than two distinct times)."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return 60.0 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


@dataclass(frozen=True, slots=True)
class Tolerances:
    """How much each series may grow a minute and still count as flat. A leak shows as steady
    growth; a shrinking series (a pool closing idle connections) is flat for this purpose."""

    rss_mb: float = 0.5
    fds: float = 0.2
    tcp_sockets: float = 0.2
    pg_connections: float = 0.2
    backlog_share: float = 0.01
    """Outbox backlog and consumer lag: this share of the records offered a minute."""

    def limits(self, rate: float) -> dict[str, float]:
        backlog = max(10.0, self.backlog_share * rate * 60)
        return {"rss_mb": self.rss_mb, "fds": self.fds, "tcp_sockets": self.tcp_sockets,
                "pg_connections": self.pg_connections, "outbox_backlog": backlog, "consumer_lag": backlog}


def verdict(samples: Sequence[Mapping[str, float]], *, settle_s: float, rate: float,
            tolerances: Tolerances) -> dict[str, Any]:
    """Slopes of each series over the samples taken after ``settle_s`` (the process's start-up
    growth -- pools filling, caches warming -- is not a leak), each against its limit, and the
    task restarts over the whole run."""
    settled = [s for s in samples if s["t"] >= settle_s]
    limits = tolerances.limits(rate)
    slopes = {name: slope_per_minute([(s["t"], s[name]) for s in settled]) for name in SERIES}
    growing = sorted(name for name in SERIES if slopes[name] > limits[name])
    restarts = max((int(s["task_restarts"]) for s in samples), default=0)
    return {
        "slopes_per_minute": {name: round(value, 4) for name, value in slopes.items()},
        "limits_per_minute": limits,
        "samples_judged": len(settled),
        "growing": growing,
        "task_restarts": restarts,
        "flat": not growing and len(settled) >= 2,
    }
