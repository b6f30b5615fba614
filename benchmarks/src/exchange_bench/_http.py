"""A minimal HTTP/1.1 keep-alive client on asyncio streams: cheap enough that the load
generator measures the server, not itself."""

from __future__ import annotations

import asyncio
import contextlib
import time

__all__ = ("Connection", "mark_window")


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.content_type = ""
        """The last response's Content-Type (the chaos checker holds every error to problem+json)."""

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self._reader, self._writer

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        return await self.request("POST", path, body, headers)

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        return await self.request("GET", path, None, headers)

    async def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        """One request on the kept-alive connection (opened again when the server closed it)."""
        reader, writer = await self._open()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self._host}"]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        head.extend(f"{k}: {v}" for k, v in headers.items())
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            self._reader = self._writer = None
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        close = False
        self.content_type = ""
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            lname = name.strip().lower()
            if lname == "content-length":
                length = int(value.strip())
            elif lname == "content-type":
                self.content_type = value.strip()
            elif lname == "connection" and value.strip().lower() == "close":
                close = True
        payload = await reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


async def mark_window(measure_from: float, deadline: float) -> None:
    """Print ``measuring`` when the counted window opens and ``measured`` when it closes
    (``time.perf_counter`` instants), so the runner reads the machine's CPU over exactly it."""
    await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
    print("measuring", flush=True)
    await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
    print("measured", flush=True)
