"""How the pages write times, durations and JSON (Jinja filters)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from jinja2 import Environment

__all__ = ("register_filters",)

_MAX_JSON = 20_000


def when(value: Any) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS UTC``; an ISO string is parsed first; None is a dash."""
    if value is None or value == "":
        return "—"
    moment = value
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(moment, dt.datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def pretty_json(value: Any) -> str:
    """Indented JSON, cut at a size a page can hold (job results can list many ids)."""
    text = msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
    return text if len(text) <= _MAX_JSON else text[:_MAX_JSON] + "\n… (cut)"


def register_filters(env: Environment) -> None:
    env.filters["when"] = when
    env.filters["pretty_json"] = pretty_json
