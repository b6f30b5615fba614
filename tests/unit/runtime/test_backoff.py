"""The one backoff formula: full jitter under a cap that no draw ever passes."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.runtime.backoff import backoff_ceiling, backoff_delay

unit_draws = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
bases = st.floats(min_value=0.001, max_value=60.0)
caps = st.floats(min_value=0.0, max_value=600.0)


@given(st.integers(min_value=1, max_value=10_000), bases, caps, unit_draws)
def test_a_delay_is_never_negative_and_never_over_the_cap(attempt: int, base: float, cap: float, u: float) -> None:
    delay = backoff_delay(attempt, base_s=base, cap_s=cap, rng=lambda: u)
    assert 0.0 <= delay <= cap
    assert delay <= backoff_ceiling(attempt, base_s=base, cap_s=cap)


@given(st.integers(min_value=1, max_value=200), bases, caps, unit_draws)
def test_for_the_same_draw_a_later_attempt_never_waits_less(attempt: int, base: float, cap: float, u: float) -> None:
    now = backoff_delay(attempt, base_s=base, cap_s=cap, rng=lambda: u)
    later = backoff_delay(attempt + 1, base_s=base, cap_s=cap, rng=lambda: u)
    assert later >= now


def test_the_jitter_is_full_from_zero_to_the_exponential() -> None:
    # The whole interval is reachable: a draw of 0 retries at once, a draw near 1 waits the ceiling.
    assert backoff_delay(4, base_s=0.2, cap_s=30, rng=lambda: 0.0) == 0.0
    assert backoff_delay(4, base_s=0.2, cap_s=30, rng=lambda: 0.999_999) == pytest.approx(1.6, rel=1e-5)
    assert backoff_ceiling(1, base_s=0.2, cap_s=30) == pytest.approx(0.2)
    assert backoff_ceiling(40, base_s=0.2, cap_s=30) == 30


def test_the_mean_delay_doubles_with_each_attempt_until_the_cap() -> None:
    rng = random.Random(20261205)
    means = [statistics.fmean(backoff_delay(n, base_s=0.1, cap_s=3.0, rng=rng.random) for _ in range(4000))
             for n in range(1, 9)]
    uncapped = means[:5]  # ceilings 0.1 .. 1.6; then 3.0 (capped) three times
    for earlier, later in itertools.pairwise(uncapped):
        assert 1.8 < later / earlier < 2.2
    assert all(m == pytest.approx(1.5, rel=0.05) for m in means[5:])


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(0, base_s=0.1, cap_s=1.0)
