"""The access log's route name belongs to the handler that served the request."""

from __future__ import annotations

import gc
from typing import Any

from litestar import get

from exchange.web.middleware import _route_of


def _handler(path: str) -> Any:
    @get(path)
    async def handler() -> None:
        return None

    return handler


def test_a_handler_is_named_by_its_own_path_even_where_a_dead_one_lived() -> None:
    # Handlers of apps that are gone are freed; a new one may sit at the same address (the
    # same id()). A cache keyed by id() named the new one after the old route.
    for n in range(300):
        handler = _handler(f"/route-{n}")
        assert _route_of({"route_handler": handler}) == f"/route-{n}"  # type: ignore[typeddict-item]
        del handler
        if n % 25 == 0:
            gc.collect()  # handlers sit in reference cycles: free the dead ones now and then


def test_no_handler_is_unmatched() -> None:
    assert _route_of({}) == "unmatched"  # type: ignore[typeddict-item]
