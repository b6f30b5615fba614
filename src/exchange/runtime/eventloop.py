"""One way to run a command's event loop: uvloop when installed (uvicorn[standard] brings it).

The server already runs on uvloop (uvicorn picks it); the CLI's long commands (replay,
reconcile) and the benchmark's load processes use it too. On `exchange replay` the stdlib
loop spent a large share of the process in epoll and in the self-pipe write of every
``call_soon_threadsafe`` with which obstore's threads hand back each GET; uvloop does both
in C (measured, docs/performance.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ("install_uvloop", "run")

T = TypeVar("T")


def install_uvloop() -> None:
    """Make uvloop the policy's loop for ``asyncio.run`` when it is installed."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop when it is installed."""
    install_uvloop()
    return asyncio.run(coro)
