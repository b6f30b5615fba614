"""Object store over aiobotocore (the design card's S3 client)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from exchange.adapters.objectstore.base import ObjectInfo, bare_etag
from exchange.errors import ObjectNotFound, ObjectStoreUnavailable
from exchange.settings import ObjectStoreSettings

__all__ = ("AiobotocoreObjectStore", "ensure_bucket_sync")

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}


def _config(pool: int) -> AioConfig:
    # Fail fast when S3 is down (ingest answers 503 rather than hanging); the default
    # pool of 10 connections caps throughput well below what the server can take.
    return AioConfig(
        max_pool_connections=pool,
        connect_timeout=2,
        read_timeout=15,
        retries={"max_attempts": 2, "mode": "standard"},
        s3={"addressing_style": "path"},
    )


class AiobotocoreObjectStore:
    def __init__(self, settings: ObjectStoreSettings, *, pool_size: int = 64) -> None:
        self.bucket = settings.bucket
        self._settings = settings
        self._pool_size = pool_size
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def _s3(self) -> Any:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    session = get_session()
                    self._client = await self._stack.enter_async_context(
                        session.create_client(
                            "s3",
                            endpoint_url=self._settings.endpoint,
                            region_name=self._settings.region,
                            aws_access_key_id=self._settings.access_key_id.reveal(),
                            aws_secret_access_key=self._settings.secret_access_key.reveal(),
                            config=_config(self._pool_size),
                        )
                    )
        return self._client

    async def put(self, key: str, body: bytes, *, content_type: str = "application/json") -> str | None:
        s3 = await self._s3()
        try:
            answer = await s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
            return bare_etag(answer.get("ETag"))
        except (BotoCoreError, ClientError, OSError) as exc:
            raise ObjectStoreUnavailable(f"object store put failed ({type(exc).__name__})") from None

    async def get(self, key: str) -> bytes:
        s3 = await self._s3()
        try:
            response = await s3.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as stream:
                data: bytes = await stream.read()
                return data
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                raise ObjectNotFound(f"no object at {key}") from None
            raise ObjectStoreUnavailable(f"object store get failed ({type(exc).__name__})") from None
        except (BotoCoreError, OSError) as exc:
            raise ObjectStoreUnavailable(f"object store get failed ({type(exc).__name__})") from None

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        try:
            await s3.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise ObjectStoreUnavailable(f"object store delete failed ({type(exc).__name__})") from None

    async def list_objects(self, prefix: str, *, start_after: str | None = None) -> AsyncIterator[ObjectInfo]:
        s3 = await self._s3()
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if start_after:
            kwargs["StartAfter"] = start_after
        try:
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(**kwargs):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"], int(item.get("Size", 0)), item["LastModified"],
                                     bare_etag(item.get("ETag")))
        except (BotoCoreError, ClientError, OSError) as exc:
            raise ObjectStoreUnavailable(f"object store list failed ({type(exc).__name__})") from None

    async def copy(self, source_key: str, target_key: str) -> None:
        s3 = await self._s3()
        try:
            await s3.copy_object(Bucket=self.bucket, Key=target_key,
                                 CopySource={"Bucket": self.bucket, "Key": source_key})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                raise ObjectNotFound(f"no object at {source_key}") from None
            raise ObjectStoreUnavailable(f"object store copy failed ({type(exc).__name__})") from None
        except (BotoCoreError, OSError) as exc:
            raise ObjectStoreUnavailable(f"object store copy failed ({type(exc).__name__})") from None

    async def ping(self) -> None:
        s3 = await self._s3()
        try:
            await s3.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise ObjectStoreUnavailable(f"object store unreachable ({type(exc).__name__})") from None

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None


def ensure_bucket_sync(endpoint: str, bucket: str, access_key: str, secret_key: str) -> None:
    """Create ``bucket`` if missing and prove it takes a write (the local stack; blocking).

    SeaweedFS's S3 gateway answers (and even lists) before the filer behind it accepts
    writes, so "healthy" means a probe object was written and deleted.
    """

    async def run(s3: Any) -> None:
        try:
            await s3.head_bucket(Bucket=bucket)
        except ClientError:
            await s3.create_bucket(Bucket=bucket)
        await s3.put_object(Bucket=bucket, Key="_probe/writable", Body=b"{}")
        await s3.delete_object(Bucket=bucket, Key="_probe/writable")

    _with_client_sync(endpoint, access_key, secret_key, run)


def drop_bucket_sync(endpoint: str, bucket: str, access_key: str, secret_key: str) -> None:
    """Delete ``bucket`` with what it holds, in one call: SeaweedFS (the local stack) deletes
    a bucket's collection whole, where S3 proper refuses a bucket that is not empty."""

    async def run(s3: Any) -> None:
        await s3.delete_bucket(Bucket=bucket)

    _with_client_sync(endpoint, access_key, secret_key, run)


def _with_client_sync(endpoint: str, access_key: str, secret_key: str,
                      use: Callable[[Any], Awaitable[None]]) -> None:
    async def run() -> None:
        session = get_session()
        async with session.create_client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=_config(2),
        ) as s3:
            await use(s3)

    asyncio.run(run())
