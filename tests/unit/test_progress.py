"""The replay's progress: rich's bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from exchange.ops_cli import ProgressReporter
from exchange.replay import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_with_count_rate_and_eta() -> None:
    out = _Terminal()
    with ProgressReporter(out) as report:
        for done in (100, 400, 1000):
            report(Progress(total=1000, done=done, emitted=done))
    text = out.getvalue()
    assert "1000/1000" in text
    assert "emitted 1000" in text
    assert "/s" in text
    assert "ETA" in text


def test_a_pipe_gets_plain_lines_at_most_once_a_second() -> None:
    out = io.StringIO()
    with ProgressReporter(out) as report:
        for done in range(1, 101):
            report(Progress(total=100, done=done, emitted=done))
    lines = out.getvalue().splitlines()
    assert 1 <= len(lines) <= 3  # the first, perhaps one a second later, and the last
    assert lines[-1].startswith("replay progress: 100/100 emitted=100")
