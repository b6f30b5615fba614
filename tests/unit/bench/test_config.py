"""The benchmark's configuration refuses what cannot be measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.bench.runner import BenchConfig


def test_at_least_one_round() -> None:
    assert BenchConfig(stack_root=Path(".exchange")).rounds == 3
    with pytest.raises(ValueError, match="rounds"):
        BenchConfig(stack_root=Path(".exchange"), rounds=0)
