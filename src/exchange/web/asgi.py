"""Reading a request and answering it at the ASGI level, for routes served as ASGI handlers.

The ingest routes are Litestar ASGI handlers (ADR 0004): routed, wrapped by the request
middleware and answered by the same exception handlers as every other route, but without
Litestar's request object, parameter model and response layer, which cost more than the
request's own work. What that layer did for them is here: the headers they read, the body
under its size limit, the method check, and a JSON answer.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from litestar.exceptions import MethodNotAllowedException
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, HTTPScope, Receive, Send

from exchange.errors import InvalidRequest

__all__ = ("allow_methods", "headers_of", "read_body", "send_json")

_MiB = 1024 * 1024


def headers_of(scope: HTTPScope, names: Collection[bytes]) -> dict[bytes, str]:
    """The first value of each wanted header (lower-case names), decoded as HTTP's latin-1."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in names and name not in found:
            found[name] = value.decode("latin-1")
    return found


async def allow_methods(scope: HTTPScope, send: Send, allowed: tuple[str, ...]) -> bool:
    """True when the request's method is one the route serves. OPTIONS is answered here
    (204 with ``Allow``, as Litestar answers it for its own routes); any other method is a 405."""
    method = scope["method"]
    if method in allowed:
        return True
    allow = ", ".join((*allowed, "OPTIONS"))
    if method == "OPTIONS":
        await _respond(send, 204, [(b"allow", allow.encode())], b"")
        return False
    raise MethodNotAllowedException(headers={"Allow": allow})


def _too_large(limit: int) -> InvalidRequest:
    size = f"{limit // _MiB} MiB" if limit % _MiB == 0 else f"{limit} bytes"
    return InvalidRequest(f"request body exceeds the {size} limit", status=413, type_slug="body-too-large")


async def read_body(receive: Receive, content_length: str | None, limit: int) -> bytes:
    """The whole body, refused with a 413 as soon as it is known to exceed ``limit`` bytes:
    from ``Content-Length`` before a byte is read, else (chunked) once the chunks pass it."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the client went away
            raise InvalidRequest("the client disconnected before the body was complete")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_json(send: Send, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
    """One complete response: ``body`` is already-encoded JSON."""
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    for name, value in (headers or {}).items():
        raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await _respond(send, status, raw_headers, body)


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
