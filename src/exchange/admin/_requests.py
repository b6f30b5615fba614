"""The admin operations' parameters, bounded: what the HTTP API and the console accept alike.

Every parameter is bounded here, so nothing the database or the job would fail on gets past
the door: text without NUL (PostgreSQL cannot store it), job windows and limits within ranges
the job's arithmetic takes."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from exchange.derive import MAX_BATCH
from exchange.events import SOURCE_PATTERN
from exchange.replay import MAX_LIMIT, MAX_WINDOW_S
from exchange.web import NO_NUL

__all__ = ("DeriveJobRequest", "ReconcileJobRequest", "ReplayJobRequest", "ResolveRequest", "VerifyJobRequest")

Source = Annotated[str, msgspec.Meta(pattern=SOURCE_PATTERN)]
Window = Annotated[float, msgspec.Meta(ge=0, le=MAX_WINDOW_S)]


class ReplayJobRequest(msgspec.Struct, forbid_unknown_fields=True):
    source: Source
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] | None = None
    emit_version: Literal["v1", "v2", "auto"] = "auto"
    dry_run: bool = False
    read_raw: bool = False


class VerifyJobRequest(msgspec.Struct, forbid_unknown_fields=True):
    source: Source


class ReconcileJobRequest(msgspec.Struct, forbid_unknown_fields=True):
    source: Source
    repair: bool = False
    orphan_grace_s: Window = 600.0
    stuck_after_s: Window = 900.0
    in_flight_s: Window = 300.0


class DeriveJobRequest(msgspec.Struct, forbid_unknown_fields=True):
    dataset: Literal["patient-index", "persons"]
    verify: bool = False
    dry_run: bool = False
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH)] = 1000


class ResolveRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=NO_NUL)]
