"""Reading records back over HTTP (exchange_bench.linkage_eval.readback), against a stand-in
server answering as the query API's contract says: ``GET /records/{record_id}/linkage`` ->
``{"record_id", "person_id", "key_id", "recipes", "linked"}``, listed in the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from exchange_bench.linkage_eval.readback import has_linkage_route, read_field

PERSONS = {"r1": "p1", "r2": "p1", "r3": "p3"}


def _answer(status: int, body: object) -> bytes:
    payload = json.dumps(body).encode()
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload


async def _serve(paths: dict[str, object], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while request := await reader.readline():
        _method, target, _version = request.decode().split()
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        parts = target.strip("/").split("/")
        if target == "/schema/openapi.json":
            writer.write(_answer(200, {"paths": paths}))
        elif headers.get("authorization") != "Bearer t":
            writer.write(_answer(401, {}))
        elif len(parts) == 3 and parts[0] == "records" and parts[2] == "linkage" and parts[1] in PERSONS:
            writer.write(_answer(200, {"record_id": parts[1], "person_id": PERSONS[parts[1]], "key_id": "k1",
                                       "recipes": [], "linked": []}))
        else:
            writer.write(_answer(404, {}))
        await writer.drain()
    writer.close()


@pytest.fixture
async def linkage_server() -> AsyncIterator[int]:
    paths = {"/records/{record_id}": {"get": {}}, "/records/{record_id}/linkage": {"get": {}}}
    server = await asyncio.start_server(lambda r, w: _serve(paths, r, w), "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_persons_are_read_from_the_linkage_route_when_the_openapi_has_it(linkage_server: int) -> None:
    assert await asyncio.to_thread(has_linkage_route, linkage_server)
    reads = await read_field(linkage_server, "t", ["r1", "r2", "r3", "r4"], "/records/{record_id}/linkage",
                             "person_id", concurrency=2)
    assert reads.values == PERSONS
    assert reads.failures == {404: 1}  # r4 is no record


async def test_a_service_without_the_route_has_no_persons_to_read() -> None:
    paths = {"/records/{record_id}": {"get": {}}, "/records/{record_id}/linked": {"get": {}}}
    server = await asyncio.start_server(lambda r, w: _serve(paths, r, w), "127.0.0.1", 0)
    async with server:
        assert not await asyncio.to_thread(has_linkage_route, server.sockets[0].getsockname()[1])
