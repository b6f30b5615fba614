"""Object store over obstore (Rust ``object_store``): the faster S3 client.

It measured faster than aiobotocore on every path of the benchmark (ingest, normalizer,
replay, the floor: docs/performance.md), so it is the default; ``OBJECT_STORE_CLIENT``
chooses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from exchange.adapters.objectstore.base import ObjectInfo, bare_etag
from exchange.errors import ObjectNotFound, ObjectStoreUnavailable
from exchange.settings import ObjectStoreSettings

__all__ = ("ObstoreObjectStore",)

_BEYOND_ANY_END = 1 << 62  # S3 answers a range past the end with the object up to its end


class ObstoreObjectStore:
    def __init__(self, settings: ObjectStoreSettings) -> None:
        self.bucket = settings.bucket
        self._store = S3Store(
            settings.bucket,
            endpoint=settings.endpoint,
            region=settings.region,
            access_key_id=settings.access_key_id.reveal(),
            secret_access_key=settings.secret_access_key.reveal(),
            virtual_hosted_style_request=False,
            client_options={
                "allow_http": settings.endpoint.startswith("http://"),
                # Fail fast when S3 is down: ingest answers 503 instead of hanging.
                "connect_timeout": dt.timedelta(seconds=2),
                "timeout": dt.timedelta(seconds=15),
            },
            retry_config={"max_retries": 1, "retry_timeout": dt.timedelta(seconds=5),
                          "backoff": {"init_backoff": dt.timedelta(milliseconds=50),
                                      "max_backoff": dt.timedelta(seconds=1), "base": 2}},
        )

    async def put(self, key: str, body: bytes, *, content_type: str = "application/json") -> str | None:
        try:
            answer = await obstore.put_async(self._store, key, body, attributes={"Content-Type": content_type})
            return bare_etag(answer["e_tag"])
        except BaseError as exc:
            raise ObjectStoreUnavailable(f"object store put failed ({type(exc).__name__})") from None

    async def get(self, key: str) -> bytes:
        # A ranged GET from 0 to beyond any end answers the whole object, bytes and all, in
        # one call into Rust and back; ``get_async`` answers the headers and ``bytes_async``
        # the body, two hand-offs from obstore's threads to the event loop. One call measured
        # more GETs a second for less client CPU (docs/performance.md). An empty object has
        # no byte 0 (416): it is read the plain way.
        try:
            return bytes(await obstore.get_range_async(self._store, key, start=0, end=_BEYOND_ANY_END))
        except (NotFoundError, FileNotFoundError):
            raise ObjectNotFound(f"no object at {key}") from None
        except BaseError as exc:
            if "416" not in str(exc):
                raise ObjectStoreUnavailable(f"object store get failed ({type(exc).__name__})") from None
        try:
            result = await obstore.get_async(self._store, key)
            return bytes(await result.bytes_async())
        except (NotFoundError, FileNotFoundError):
            raise ObjectNotFound(f"no object at {key}") from None
        except BaseError as exc:
            raise ObjectStoreUnavailable(f"object store get failed ({type(exc).__name__})") from None

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, key)
        except BaseError as exc:
            raise ObjectStoreUnavailable(f"object store delete failed ({type(exc).__name__})") from None

    async def list_objects(self, prefix: str, *, start_after: str | None = None) -> AsyncIterator[ObjectInfo]:
        try:
            stream = obstore.list(self._store, prefix, offset=start_after, chunk_size=1000)
            async for batch in stream:
                for meta in batch:
                    yield ObjectInfo(meta["path"], int(meta["size"]), meta["last_modified"], bare_etag(meta["e_tag"]))
        except BaseError as exc:
            raise ObjectStoreUnavailable(f"object store list failed ({type(exc).__name__})") from None

    async def copy(self, source_key: str, target_key: str) -> None:
        try:
            await obstore.copy_async(self._store, source_key, target_key)
        except (NotFoundError, FileNotFoundError):
            raise ObjectNotFound(f"no object at {source_key}") from None
        except BaseError as exc:
            raise ObjectStoreUnavailable(f"object store copy failed ({type(exc).__name__})") from None

    async def ping(self) -> None:
        try:
            stream = obstore.list(self._store, "__ping__/", chunk_size=1)
            async for _batch in stream:
                break
        except BaseError as exc:
            raise ObjectStoreUnavailable(f"object store unreachable ({type(exc).__name__})") from None

    async def close(self) -> None:
        return None
