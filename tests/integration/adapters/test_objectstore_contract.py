"""One suite, every object-store adapter, against the real S3 (SeaweedFS) of the stack."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from exchange.adapters.objectstore import ObjectStore, make_object_store
from exchange.errors import ObjectNotFound, ObjectStoreUnavailable
from exchange_stack import Stack
from tests.support.app import make_settings


@pytest.fixture(params=["aiobotocore", "obstore"])
async def store(request: pytest.FixtureRequest, stack_env: dict[str, str]) -> AsyncIterator[ObjectStore]:
    adapter = make_object_store(make_settings(stack_env, OBJECT_STORE_CLIENT=request.param).object_store)
    try:
        yield adapter
    finally:
        await adapter.close()


async def test_put_then_get_returns_the_same_bytes(store: ObjectStore, unique: str) -> None:
    body = b'{"a": 1, "\\u00e9": "\xc3\xa9"}'
    await store.put(f"c-{unique}/x.json", body)
    assert await store.get(f"c-{unique}/x.json") == body


@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024])
async def test_objects_of_any_size_come_back_whole(store: ObjectStore, unique: str, size: int) -> None:
    body = bytes(i % 251 for i in range(size))
    await store.put(f"s-{unique}/{size}.bin", body, content_type="application/octet-stream")
    assert await store.get(f"s-{unique}/{size}.bin") == body


async def test_a_missing_key_is_object_not_found(store: ObjectStore, unique: str) -> None:
    with pytest.raises(ObjectNotFound):
        await store.get(f"c-{unique}/missing.json")


async def test_listing_is_lexicographic_and_resumes_after_a_key(store: ObjectStore, unique: str) -> None:
    keys = [f"l-{unique}/{name}.json" for name in ("b", "a", "c", "aa", "B")]
    for key in keys:
        await store.put(key, b"{}")
    await store.put(f"l-{unique}x/other.json", b"{}")  # a sibling prefix must not show up
    listed = [info.key async for info in store.list_objects(f"l-{unique}/")]
    assert listed == sorted(keys)
    after = [info.key async for info in store.list_objects(f"l-{unique}/", start_after=f"l-{unique}/aa.json")]
    assert after == [k for k in sorted(keys) if k > f"l-{unique}/aa.json"]
    infos = [info async for info in store.list_objects(f"l-{unique}/")]
    assert all(i.size == 2 and i.last_modified.tzinfo is not None for i in infos)


async def test_put_answers_the_etag_the_listing_shows_and_a_rewrite_changes_it(store: ObjectStore, unique: str) -> None:
    """Replay trusts an object ingest stored while it is listed with the ETag its PUT answered
    (ADR 0005): both must be the same string, quotes stripped, and a new body a new ETag."""
    key = f"e-{unique}/x.json"
    first = await store.put(key, b'{"a": 1}')
    assert first and not first.startswith('"')
    assert [info.etag async for info in store.list_objects(f"e-{unique}/")] == [first]
    second = await store.put(key, b'{"a": 2}')
    assert second != first
    assert [info.etag async for info in store.list_objects(f"e-{unique}/")] == [second]


async def test_copy_and_delete(store: ObjectStore, unique: str) -> None:
    await store.put(f"m-{unique}/src.json", b"{}")
    await store.copy(f"m-{unique}/src.json", f"_q/m-{unique}/src.json")
    await store.delete(f"m-{unique}/src.json")
    assert await store.get(f"_q/m-{unique}/src.json") == b"{}"
    with pytest.raises(ObjectNotFound):
        await store.get(f"m-{unique}/src.json")
    with pytest.raises(ObjectNotFound):
        await store.copy(f"m-{unique}/nope.json", f"m-{unique}/nope2.json")


async def test_ping_succeeds_on_a_live_bucket(store: ObjectStore) -> None:
    await store.ping()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ["aiobotocore", "obstore"])
async def test_an_unreachable_store_is_object_store_unavailable(
    stack: Stack, stack_env: dict[str, str], client: str, unique: str
) -> None:
    adapter = make_object_store(make_settings(stack_env, OBJECT_STORE_CLIENT=client).object_store)
    await asyncio.to_thread(stack.stop, "s3")
    try:
        with pytest.raises(ObjectStoreUnavailable):
            await adapter.put(f"u-{unique}/x.json", b"{}")
        with pytest.raises(ObjectStoreUnavailable):
            await adapter.get(f"u-{unique}/x.json")
    finally:
        await asyncio.to_thread(stack.start, "s3")
        await adapter.close()
