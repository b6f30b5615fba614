"""Object storage: one port (``base.ObjectStore``) and its adapters."""

from __future__ import annotations

from exchange.adapters.objectstore.aiobotocore import AiobotocoreObjectStore, ensure_bucket_sync
from exchange.adapters.objectstore.base import ObjectInfo, ObjectStore

__all__ = ("AiobotocoreObjectStore", "ObjectInfo", "ObjectStore", "ensure_bucket_sync")
