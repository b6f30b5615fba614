"""The benchmark's configuration refuses what cannot be measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.cli import main
from exchange_bench.runner import BenchConfig


def test_at_least_one_round() -> None:
    assert BenchConfig(stack_root=Path(".exchange")).rounds == 3
    with pytest.raises(ValueError, match="rounds"):
        BenchConfig(stack_root=Path(".exchange"), rounds=0)


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5"])
def test_the_command_line_refuses_a_round_count_below_one(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--rounds", value])
    assert exit_info.value.code == 2  # argparse's usage error, before any stack is touched
    assert "--rounds: must be a whole number of at least 1" in capsys.readouterr().err
