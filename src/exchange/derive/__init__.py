"""Derive context: datasets materialized from canonical rows (the original's derived-jobs service)."""

from __future__ import annotations

from exchange.derive._datasets import DATASETS
from exchange.derive._runner import MAX_BATCH, NAMES, DeriveParams, DeriveProgress, Deriver

__all__ = ("DATASETS", "MAX_BATCH", "NAMES", "DeriveParams", "DeriveProgress", "Deriver")
