"""The soak's judgement: least-squares slopes per minute, each series against its limit after the
settling time, task restarts, and the command's options."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange_bench.cli import register
from exchange_bench.soak.trend import SERIES, Tolerances, floors, median_slope_per_minute, slope_per_minute, verdict


def _sample(t: float, **values: float) -> dict[str, float]:
    return {"t": t, **dict.fromkeys(SERIES, 10.0), "task_restarts": 0.0, **values}


def test_a_line_growing_a_unit_a_second_grows_sixty_a_minute() -> None:
    assert slope_per_minute([(t, 5 + t) for t in (0.0, 5.0, 10.0, 30.0)]) == pytest.approx(60.0)


def test_too_few_points_or_one_time_have_no_slope() -> None:
    assert slope_per_minute([]) == 0.0
    assert slope_per_minute([(1.0, 3.0)]) == 0.0
    assert slope_per_minute([(2.0, 1.0), (2.0, 9.0)]) == 0.0


@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=30), st.floats(-10, 10), st.floats(-1e3, 1e3))
def test_the_slope_of_a_line_is_found_whatever_its_offset(times: list[float], per_s: float, offset: float) -> None:
    distinct = sorted(set(times))
    if len(distinct) < 2 or distinct[-1] - distinct[0] < 1:
        return
    slope = slope_per_minute([(t, offset + per_s * t) for t in distinct])
    assert slope == pytest.approx(per_s * 60, rel=1e-6, abs=1e-6)


def test_flat_series_pass_and_the_startup_growth_is_not_judged() -> None:
    # RSS climbs 50 MB in the first minute (pools, caches), then stays.
    samples = [_sample(t, rss_mb=100 + min(t, 60) * 50 / 60) for t in range(0, 600, 5)]
    judged = verdict(samples, settle_s=120, rate=50, tolerances=Tolerances())
    assert judged["flat"] is True and judged["growing"] == []
    assert judged["samples_judged"] == len([t for t in range(0, 600, 5) if t >= 120])
    assert verdict(samples, settle_s=0, rate=50, tolerances=Tolerances())["growing"] == ["rss_mb"]


def test_a_leak_of_descriptors_or_a_growing_backlog_is_named() -> None:
    samples = [_sample(t, fds=50 + t / 60, outbox_backlog=t * 2) for t in range(0, 600, 5)]
    judged = verdict(samples, settle_s=60, rate=10, tolerances=Tolerances())
    # 1 descriptor a minute is over 0.2; 120 rows a minute over max(10, 1% of 600 offered a minute).
    assert judged["growing"] == ["fds", "outbox_backlog"] and judged["flat"] is False
    assert judged["limits_per_minute"]["outbox_backlog"] == 10.0
    assert judged["slopes_per_minute"]["fds"] == pytest.approx(1.0)


def test_a_shrinking_series_is_flat_and_restarts_are_the_most_counted() -> None:
    samples = [_sample(t, pg_connections=40 - t / 10, task_restarts=1.0 if t > 100 else 0.0) for t in range(0, 300, 5)]
    judged = verdict(samples, settle_s=0, rate=10, tolerances=Tolerances())
    assert judged["flat"] is True and judged["task_restarts"] == 1


def test_one_sample_after_settling_is_not_a_verdict_of_flat() -> None:
    judged = verdict([_sample(0), _sample(10)], settle_s=5, rate=10, tolerances=Tolerances())
    assert judged["samples_judged"] == 1 and judged["flat"] is False


def _soak_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["soak", *argv])


def test_the_soak_command_defaults_to_thirty_minutes_at_half_the_measured_capacity() -> None:
    args = _soak_args()
    assert (args.duration, args.rate, args.interval) == (1800.0, None, 5.0)
    assert _soak_args("--duration", "60", "--rate", "12.5").rate == 12.5


@pytest.mark.parametrize("bad", ["0", "-3", "fast"])
def test_the_soak_command_refuses_a_rate_that_is_not_positive(bad: str) -> None:
    with pytest.raises(SystemExit):
        _soak_args("--rate", bad)


def test_connections_swinging_with_the_load_are_flat_but_a_rising_floor_is_a_leak() -> None:
    # Descriptors follow the connections open at the moment: a swing of dozens with no trend,
    # ending on a peak, is flat; a floor rising a descriptor a minute under the same swing is not.
    swing = [(t, 90 + (45 if (t // 5) % 13 == 0 or t > 1700 else 0)) for t in range(0, 1800, 5)]
    samples = [_sample(t, fds=v, tcp_sockets=v - 34) for t, v in swing]
    judged = verdict(samples, settle_s=180, rate=145, tolerances=Tolerances())
    assert judged["raw_slopes_per_minute"]["fds"] > 0.2  # the raw slope alone would call it a leak
    assert judged["flat"] is True and judged["slopes_per_minute"]["fds"] == pytest.approx(0.0)
    leaking = [_sample(t, fds=v + t / 60, tcp_sockets=v - 34) for t, v in swing]
    judged = verdict(leaking, settle_s=180, rate=145, tolerances=Tolerances())
    assert judged["growing"] == ["fds"] and judged["slopes_per_minute"]["fds"] == pytest.approx(1.0, abs=0.1)


def test_floors_are_the_minima_of_whole_windows() -> None:
    points = [(float(t), float(t % 7)) for t in range(0, 130)]
    assert floors(points, window_s=60) == [(30.0, 0.0), (90.0, 0.0)]  # the partial third window is left out
    assert floors([]) == []


def test_the_median_slope_ignores_a_few_high_points_and_finds_a_steady_rise() -> None:
    flat = [(60.0 * n, 85.0 + (40.0 if n in (17, 18, 26) else 0.0)) for n in range(27)]
    assert median_slope_per_minute(flat) == 0.0
    assert slope_per_minute(flat) > 0.2  # least squares is tilted by the last high minute
    rising = [(t, v + t / 60) for t, v in flat]
    assert median_slope_per_minute(rising) == pytest.approx(1.0)
    assert median_slope_per_minute([(5.0, 1.0)]) == 0.0
