"""The CLI's commands run on uvloop (measured: replay ~1,100 -> ~1,600 objects/s)."""

from __future__ import annotations

import asyncio

from exchange.runtime import eventloop


def test_run_returns_the_result_on_a_uvloop_loop() -> None:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    try:
        assert eventloop.run(which()).startswith("uvloop")
    finally:
        asyncio.set_event_loop_policy(None)  # leave the default policy to the other tests
