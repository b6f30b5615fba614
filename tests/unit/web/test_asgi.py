"""web.asgi: what Litestar's request layer did for the routes served as ASGI handlers."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.exceptions import MethodNotAllowedException

from exchange.errors import InvalidRequest
from exchange.web.asgi import allow_methods, headers_of, read_body, send_json

LIMIT = 1024


def _receiver(*messages: dict[str, Any]) -> Any:
    queue = list(messages)
    read: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        message = queue.pop(0)
        read.append(message)
        return message

    receive.read = read  # type: ignore[attr-defined]
    return receive


def _chunks(*parts: bytes) -> list[dict[str, Any]]:
    return [{"type": "http.request", "body": part, "more_body": i < len(parts) - 1} for i, part in enumerate(parts)]


async def test_the_body_in_one_message_or_many() -> None:
    assert await read_body(_receiver(*_chunks(b"abc")), "3", LIMIT) == b"abc"
    assert await read_body(_receiver(*_chunks(b"ab", b"", b"cd")), None, LIMIT) == b"abcd"
    assert await read_body(_receiver(*_chunks(b"")), "0", LIMIT) == b""
    assert await read_body(_receiver(*_chunks(b"x" * LIMIT)), None, LIMIT) == b"x" * LIMIT  # the limit itself is fine


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    receive = _receiver(*_chunks(b"x"))
    with pytest.raises(InvalidRequest) as caught:
        await read_body(receive, str(LIMIT + 1), LIMIT)
    assert caught.value.status == 413
    assert caught.value.type_slug == "body-too-large"
    assert receive.read == []


async def test_chunks_past_the_limit_are_refused_once_they_pass_it() -> None:
    receive = _receiver(*_chunks(b"x" * 600, b"x" * 600, b"never read"))
    with pytest.raises(InvalidRequest) as caught:
        await read_body(receive, None, LIMIT)
    assert caught.value.status == 413
    assert str(caught.value) == "request body exceeds the 1024 bytes limit"
    assert len(receive.read) == 2


async def test_the_limit_is_named_in_mib_when_it_is_whole_mebibytes() -> None:
    with pytest.raises(InvalidRequest, match=r"exceeds the 1 MiB limit"):
        await read_body(_receiver(), str(2**20 + 1), 2**20)


async def test_a_client_gone_mid_body_is_a_400_not_a_crash() -> None:
    receive = _receiver({"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"})
    with pytest.raises(InvalidRequest) as caught:
        await read_body(receive, None, LIMIT)
    assert caught.value.status == 400


def test_headers_first_value_of_the_wanted_names_only() -> None:
    scope: Any = {"headers": [(b"authorization", b"Bearer a"), (b"x-other", b"1"), (b"authorization", b"Bearer b"),
                              (b"idempotency-key", "kéy".encode("latin-1"))]}
    found = headers_of(scope, (b"authorization", b"idempotency-key", b"content-length"))
    assert found == {b"authorization": "Bearer a", b"idempotency-key": "kéy"}


class _Sent(list[dict[str, Any]]):
    async def __call__(self, message: dict[str, Any]) -> None:
        self.append(message)


async def test_the_served_method_goes_on_options_is_answered_others_are_405() -> None:
    sent = _Sent()
    assert await allow_methods({"method": "POST"}, sent, ("POST",)) is True  # type: ignore[typeddict-item]
    assert sent == []
    assert await allow_methods({"method": "OPTIONS"}, sent, ("POST",)) is False  # type: ignore[typeddict-item]
    assert sent[0]["status"] == 204
    assert (b"allow", b"POST, OPTIONS") in sent[0]["headers"]
    with pytest.raises(MethodNotAllowedException) as caught:
        await allow_methods({"method": "GET"}, sent, ("POST",))  # type: ignore[typeddict-item]
    assert caught.value.headers == {"Allow": "POST, OPTIONS"}


async def test_send_json_writes_one_complete_response() -> None:
    sent = _Sent()
    await send_json(sent, 202, b'{"a":1}', {"Idempotent-Replayed": "true"})
    start, body = sent
    assert start["status"] == 202
    assert (b"content-type", b"application/json") in start["headers"]
    assert (b"content-length", b"7") in start["headers"]
    assert (b"idempotent-replayed", b"true") in start["headers"]
    assert body == {"type": "http.response.body", "body": b'{"a":1}', "more_body": False}
