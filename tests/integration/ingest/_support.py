"""Bodies, requests and "what was written" probes shared by the ingest integration tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from litestar.testing import AsyncTestClient

from exchange.adapters.objectstore import AiobotocoreObjectStore
from exchange.settings import Settings
from tests.support.db import fetch, fetchval

PROBLEM_JSON = "application/problem+json"


def v1_body(source: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": source,
        "record_type": "encounter",
        "patient": {"first_name": "Sam", "last_name": "Lee", "dob": "1990-01-01"},
        "payload": {"example": True},
    }
    body.update(overrides)
    return body


def v2_body(source: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": source,
        "record_kind": "claim",
        "schema_hint": "partnerA.v2",
        "patient": {"given_name": "Sam", "family_name": "Lee", "dob": "1990-01-01"},
        "payload": {"example": True},
    }
    body.update(overrides)
    return body


def body_for(version: int, source: str, **overrides: Any) -> dict[str, Any]:
    return v1_body(source, **overrides) if version == 1 else v2_body(source, **overrides)


def new_key(prefix: str = "it") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


async def post_ingest(
    client: AsyncTestClient[Any],
    version: int,
    body: Any,
    *,
    key: str | None,
    auth: dict[str, str],
    headers: dict[str, Any] | None = None,
) -> Any:
    """POST a body (a dict is sent as JSON; bytes as they are) to /v{version}/ingest."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent: dict[str, Any] = {**auth, "Content-Type": "application/json"}
    if key is not None:
        sent["Idempotency-Key"] = key
    sent.update(headers or {})
    return await client.post(f"/v{version}/ingest", content=content, headers=sent)


@dataclass(frozen=True)
class Written:
    """Rows and objects that exist for one source (and optionally one key)."""

    idempotency: int
    outbox: int
    manifest: int
    objects: tuple[str, ...]

    @property
    def nothing(self) -> bool:
        return (self.idempotency, self.outbox, self.manifest, self.objects) == (0, 0, 0, ())


async def s3_keys(settings: Settings, prefix: str) -> tuple[str, ...]:
    """Keys under ``prefix``, listed with a client of the test's own (not the app's adapter)."""
    s3 = settings.object_store
    session = get_session()
    async with session.create_client(
        "s3", endpoint_url=s3.endpoint, region_name=s3.region, aws_access_key_id=s3.access_key_id.reveal(),
        aws_secret_access_key=s3.secret_access_key.reveal(), config=AioConfig(s3={"addressing_style": "path"}),
    ) as client:
        keys: list[str] = []
        async for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return tuple(sorted(keys))


async def s3_get(settings: Settings, key: str) -> bytes:
    store = AiobotocoreObjectStore(settings.object_store)
    try:
        return await store.get(key)
    finally:
        await store.close()


async def written(settings: Settings, source: str, *, keys: tuple[str, ...] = ()) -> Written:
    """What ingest left behind for ``source``: idempotency rows are found by key (they hold no source)."""
    dsn = settings.database.dsn
    idem = await fetchval(dsn, "SELECT count(*) FROM idempotency_keys WHERE key = ANY($1::text[])", list(keys))
    outbox = await fetchval(dsn, "SELECT count(*) FROM outbox_events WHERE payload->>'source' = $1", source)
    manifest = await fetchval(dsn, "SELECT count(*) FROM raw_object_manifest WHERE source = $1", source)
    return Written(int(idem), int(outbox), int(manifest), await s3_keys(settings, f"{source}/"))


async def outbox_rows(settings: Settings, record_id: str) -> list[Any]:
    return await fetch(
        settings.database.dsn,
        "SELECT id, topic, key, payload, headers, published_at FROM outbox_events WHERE key = $1 ORDER BY id",
        record_id,
    )


async def manifest_rows(settings: Settings, record_id: str) -> list[Any]:
    return await fetch(
        settings.database.dsn, "SELECT * FROM raw_object_manifest WHERE record_id = $1", uuid.UUID(record_id)
    )


def as_json(value: Any) -> Any:
    """jsonb arrives as text from a bare asyncpg connection."""
    return json.loads(value) if isinstance(value, str) else value
