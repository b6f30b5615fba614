from __future__ import annotations

import datetime as dt

from exchange.console._text import pretty_json, when


def test_times_are_written_in_utc() -> None:
    assert when(dt.datetime(2026, 12, 5, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == "2026-12-05 22:00:00 UTC"
    assert when("2026-12-05T22:00:00.000001Z") == "2026-12-05 22:00:00 UTC"
    assert when(None) == "—"


def test_a_large_json_value_is_cut() -> None:
    text = pretty_json({"missing": [f"id-{n}" for n in range(5000)]})
    assert text.endswith("… (cut)")
    assert len(text) < 21_000
