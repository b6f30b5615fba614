"""The soak's judgement, pure: least-squares slopes of the sampled series and the verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ("FLOOR_SERIES", "SERIES", "Tolerances", "floors", "median_slope_per_minute", "slope_per_minute", "verdict")

SERIES = ("rss_mb", "fds", "tcp_sockets", "pg_connections", "outbox_backlog", "consumer_lag")
"""What a sample holds, besides its time and the task restarts so far."""
FLOOR_SERIES = ("fds", "tcp_sockets")
"""Series that follow the connections open at the moment: an open-loop client opens more while
answers are slow, so they swing by dozens with no trend, and a slow minute on a shared machine
holds them up a whole minute (a soak at 145 records/s: 84-134 descriptors throughout, the other
descriptors 34 from start to end). A leak raises the floor they return to, so these are judged
by the median slope (Theil-Sen) of their per-minute minima, which a few high minutes do not
tilt; the least-squares slope of the raw samples is reported beside it."""
_FLOOR_WINDOW_S = 60.0


def median_slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """The Theil-Sen slope of ``(seconds, value)`` points, per minute: the median of the slopes
    between every two of them (0 for fewer than two distinct times)."""
    slopes = sorted((v2 - v1) / (t2 - t1) for i, (t1, v1) in enumerate(points) for t2, v2 in points[i + 1:]
                    if t2 != t1)
    if not slopes:
        return 0.0
    mid = len(slopes) // 2
    return 60.0 * (slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2)


def floors(points: Sequence[tuple[float, float]], window_s: float = _FLOOR_WINDOW_S) -> list[tuple[float, float]]:
    """The minimum of each ``window_s`` of ``(seconds, value)`` points, at the window's middle
    (only whole windows: a partial last one would read a lower floor from fewer samples)."""
    if not points:
        return []
    start = points[0][0]
    end = points[-1][0]
    windows: dict[int, float] = {}
    for t, v in points:
        n = int((t - start) // window_s)
        if start + (n + 1) * window_s <= end:
            windows[n] = min(v, windows.get(n, v))
    return [(start + (n + 0.5) * window_s, v) for n, v in sorted(windows.items())]


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
    growth -- pools filling, caches warming -- is not a leak), each against its limit (those in
    ``FLOOR_SERIES`` by their per-minute floors), and the task restarts over the whole run."""
    settled = [s for s in samples if s["t"] >= settle_s]
    limits = tolerances.limits(rate)
    raw = {name: slope_per_minute([(s["t"], s[name]) for s in settled]) for name in SERIES}
    slopes = {name: median_slope_per_minute(floors([(s["t"], s[name]) for s in settled])) if name in FLOOR_SERIES
              else raw[name] for name in SERIES}
    growing = sorted(name for name in SERIES if slopes[name] > limits[name])
    restarts = max((int(s["task_restarts"]) for s in samples), default=0)
    return {
        "slopes_per_minute": {name: round(value, 4) for name, value in slopes.items()},
        "raw_slopes_per_minute": {name: round(raw[name], 4) for name in FLOOR_SERIES},
        "limits_per_minute": limits,
        "samples_judged": len(settled),
        "growing": growing,
        "task_restarts": restarts,
        "flat": not growing and len(settled) >= 2,
    }
