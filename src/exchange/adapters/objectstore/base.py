"""The object-store port: what the platform needs from S3, and nothing more."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ("ObjectInfo", "ObjectStore")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: dt.datetime


class ObjectStore(Protocol):
    """Raw-object storage. Implementations raise ``ObjectStoreUnavailable`` when the
    service cannot be reached and ``ObjectNotFound`` for a missing key."""

    bucket: str

    async def put(self, key: str, body: bytes, *, content_type: str = "application/json") -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    def list_objects(self, prefix: str, *, start_after: str | None = None) -> AsyncIterator[ObjectInfo]:
        """Objects under ``prefix`` in lexicographic key order (S3 lists in UTF-8 byte order)."""
        ...

    async def copy(self, source_key: str, target_key: str) -> None: ...

    async def ping(self) -> None:
        """Cheap round-trip proving the bucket is reachable."""

    async def close(self) -> None: ...
