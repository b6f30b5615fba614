"""Object storage: one port (``base.ObjectStore``) and its adapters.

The aiobotocore adapter is imported only when it is chosen (``OBJECT_STORE_CLIENT``) or
asked for by name: botocore and aiohttp would cost every process that does not use them
memory and start-up time (measured, docs/performance.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exchange.adapters.objectstore.base import ObjectInfo, ObjectStore
from exchange.adapters.objectstore.obstore import ObstoreObjectStore
from exchange.settings import ObjectStoreSettings

if TYPE_CHECKING:
    from exchange.adapters.objectstore.aiobotocore import (
        AiobotocoreObjectStore,
        drop_bucket_sync,
        ensure_bucket_sync,
    )

__all__ = (
    "AiobotocoreObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "ObstoreObjectStore",
    "drop_bucket_sync",
    "ensure_bucket_sync",
    "make_object_store",
)

_LAZY = frozenset({"AiobotocoreObjectStore", "drop_bucket_sync", "ensure_bucket_sync"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from exchange.adapters.objectstore import aiobotocore  # noqa: PLC0415 - see the module docstring

        return getattr(aiobotocore, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_object_store(settings: ObjectStoreSettings) -> ObjectStore:
    """The adapter ``OBJECT_STORE_CLIENT`` names (one port, two implementations)."""
    if settings.client == "obstore":
        return ObstoreObjectStore(settings)
    from exchange.adapters.objectstore.aiobotocore import AiobotocoreObjectStore  # noqa: PLC0415

    return AiobotocoreObjectStore(settings)
