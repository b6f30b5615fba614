"""Object storage: one port (``base.ObjectStore``) and its adapters."""

from __future__ import annotations

from exchange.adapters.objectstore.aiobotocore import AiobotocoreObjectStore, ensure_bucket_sync
from exchange.adapters.objectstore.base import ObjectInfo, ObjectStore
from exchange.adapters.objectstore.obstore import ObstoreObjectStore
from exchange.settings import ObjectStoreSettings

__all__ = (
    "AiobotocoreObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "ObstoreObjectStore",
    "ensure_bucket_sync",
    "make_object_store",
)


def make_object_store(settings: ObjectStoreSettings) -> ObjectStore:
    """The adapter ``OBJECT_STORE_CLIENT`` names (one port, two implementations)."""
    if settings.client == "obstore":
        return ObstoreObjectStore(settings)
    return AiobotocoreObjectStore(settings)
