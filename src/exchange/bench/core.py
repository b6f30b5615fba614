"""The service's ingest work without HTTP, run as its own process.

``IngestService.accept`` itself -- the same batching (ADR 0003), SQL and object-store client
as the server -- driven by ``--concurrency`` workers with unique keys, and none of the HTTP
side: no server, parsing, auth, logging, metrics per request or tracing. Beside the floor
(the issue's bare per-record transaction) and the full service, it tells how much of the
service's cost is its ingest work and how much the HTTP side around it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path

from exchange.adapters.objectstore import make_object_store
from exchange.adapters.postgres import Database
from exchange.bench._http import mark_window
from exchange.bench.loadgen import body
from exchange.ingest import IngestCommand, IngestService
from exchange.ops.metrics import Metrics
from exchange.runtime.eventloop import install_uvloop
from exchange.settings import load_settings, read_env_file


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
    counter = iter(range(10**9))
    measure_from = time.perf_counter() + warmup  # the same uncounted warm-up as the service gets
    deadline = measure_from + duration
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            n = next(counter)
            began = time.perf_counter()
            await service.accept(IngestCommand(
                version=1, client_id="bench-core", idempotency_key=f"{prefix}-{n}", body=body(source, n),
                correlation_id=f"core-{prefix}-{n}", source=source,
            ))
            if began >= measure_from:
                done += 1

    await asyncio.gather(mark_window(measure_from, deadline), *(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - measure_from
    await db.close()
    await store.close()
    return {"core_rps": done / elapsed, "requests": done, "elapsed_s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=0.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    install_uvloop()
    result = asyncio.run(run(args.env_file, args.source, args.topic, args.concurrency, args.duration, args.warmup))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
