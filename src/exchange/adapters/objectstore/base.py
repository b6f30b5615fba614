"""The object-store port: what the platform needs from S3, and nothing more."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ("ObjectInfo", "ObjectStore", "bare_etag")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: dt.datetime
    etag: str | None = None
    """The store's entity tag, quotes stripped (None when the store gave none)."""


def bare_etag(etag: str | None) -> str | None:
    """S3 quotes its ETags (``"9a0364b9..."``) in PUT answers and listings alike."""
    return etag.strip('"') if etag else None


class ObjectStore(Protocol):
    """Raw-object storage. Implementations raise ``ObjectStoreUnavailable`` when the
    service cannot be reached and ``ObjectNotFound`` for a missing key."""

    bucket: str

    async def put(self, key: str, body: bytes, *, content_type: str = "application/json") -> str | None:
        """Store the object; its ETag (quotes stripped), as later listings show it."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    def list_objects(self, prefix: str, *, start_after: str | None = None) -> AsyncIterator[ObjectInfo]:
        """Objects under ``prefix`` in lexicographic key order (S3 lists in UTF-8 byte order)."""
        ...

    async def copy(self, source_key: str, target_key: str) -> None: ...

    async def ping(self) -> None:
        """Cheap round-trip proving the bucket is reachable."""

    async def close(self) -> None: ...
