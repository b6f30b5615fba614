"""The CLI is a door too: out-of-range job parameters and ids are refused by argparse (exit 2),
with the bounds the admin API uses, before anything reaches the database or a job."""

from __future__ import annotations

import argparse

import pytest

from exchange.ops_cli import add_ops_commands


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="exchange")
    add_ops_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.mark.parametrize("argv", [
    ("reconcile", "--source", "s1", "--orphan-grace-seconds", "1e300"),
    ("reconcile", "--source", "s1", "--stuck-after-seconds", "-1"),
    ("reconcile", "--source", "s1", "--in-flight-seconds", "nan"),
    ("replay", "--source", "s1", "--limit", str(10**20)),
    ("replay", "--source", "s1", "--limit", "0"),
    ("dlq", "inspect", str(2**63)),
    ("dlq", "reprocess", "0"),
    ("dlq", "resolve", str(10**30), "--reason", "fixed"),
    ("dlq", "resolve", "1", "--reason", "x" * 501),
    ("dlq", "list", "--limit", "100000"),
    ("dlq", "list", "--since", "99999999999d"),
    ("dlq", "list", "--since", "0001-01-01T00:00:00+01:00"),
    ("dlq", "report", "--hours", str(10**20)),
])
def test_an_out_of_range_argument_is_refused_before_anything_runs(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as info:
        _parse(*argv)
    assert info.value.code == 2


def test_arguments_within_the_bounds_parse() -> None:
    args = _parse("reconcile", "--source", "s1", "--orphan-grace-seconds", "315360000")
    assert args.orphan_grace_seconds == 315_360_000
    assert _parse("dlq", "inspect", str(2**63 - 1)).id == 2**63 - 1
    assert _parse("dlq", "list", "--since", "2h").since is not None
