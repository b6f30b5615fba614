"""The service's ingest work without HTTP, run as its own process.

``IngestService.accept`` itself -- the same batching (ADR 0003), SQL and object-store client
as the server -- driven by ``--concurrency`` workers with unique keys, and none of the HTTP
side: no server, parsing, auth, logging, metrics per request or tracing. Beside the floor
(the issue's bare per-record transaction) and the full service, it tells how much of the
service's cost is its ingest work and how much the HTTP side around it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from exchange.adapters.objectstore import make_object_store
from exchange.adapters.postgres import Database
from exchange.ingest import IngestCommand, IngestService
from exchange.ops.metrics import Metrics
from exchange.settings import load_settings, read_env_file
from exchange_bench._bare import drive, main
from exchange_bench.loadgen import body


async def run(env_file: str, source: str, topic: str, concurrency: int, duration: float,
              warmup: float = 0.0) -> dict[str, float]:
    settings = load_settings({**read_env_file(Path(env_file)), **os.environ})
    db = Database(settings.database)
    await db.start()
    store = make_object_store(settings.object_store)
    service = IngestService(
        db, store, metrics=Metrics(), topic_v1=topic, topic_v2=topic,
        retention_hours=settings.ingest.idempotency_retention_hours, schema_hints=settings.ingest.schema_hints,
        batch_max=settings.ingest.batch_max, batches_in_flight=settings.ingest.batches_in_flight,
    )
    prefix = uuid.uuid4().hex[:10]

    async def one(n: int) -> None:
        await service.accept(IngestCommand(
            version=1, client_id="bench-core", idempotency_key=f"{prefix}-{n}", body=body(source, n),
            correlation_id=f"core-{prefix}-{n}", source=source,
        ))

    done, elapsed = await drive(one, concurrency, duration, warmup)
    await db.close()
    await store.close()
    return {"core_rps": done / elapsed, "requests": done, "elapsed_s": elapsed}


if __name__ == "__main__":
    main(run)
