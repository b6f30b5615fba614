"""The machine a result was measured on, written beside every benchmark figure."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

__all__ = ("machine",)

_PACKAGES = ("litestar", "msgspec", "asyncpg", "confluent-kafka", "aiobotocore", "uvicorn", "python-jose")


def machine() -> dict[str, Any]:
    """Cores, memory, Python, platform and the versions of the packages on the hot paths."""
    versions: dict[str, str | None] = {}
    for dist in _PACKAGES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "packages": versions,
    }
