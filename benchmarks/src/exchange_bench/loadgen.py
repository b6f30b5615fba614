"""Load generator, run as its own process: ``python -m exchange_bench.loadgen``.

closed loop: N connections send back to back for a duration (throughput, latency);
open loop: requests start at a fixed rate (for end-to-end latency at a given load).
Writes a JSON result file: latencies, statuses, and (record_id, accepted_at) pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from exchange.runtime.eventloop import install_uvloop
from exchange_bench._http import Connection, mark_window
from exchange_bench.people import patient_v1


def body(source: str, n: int) -> bytes:
    return json.dumps({
        "source": source, "record_type": "encounter",
        "patient": patient_v1(n, source),
        "payload": {"n": n, "kind": "bench"},
    }).encode()


async def closed_loop(host: str, port: int, token: str, source: str, concurrency: int,
                      duration: float, warmup: float = 0.0) -> dict[str, Any]:
    """``warmup`` seconds of the same load first, not counted: the server's pool fills, its
    statements get prepared and the consumer group settles before the measured window."""
    prefix = uuid.uuid4().hex[:10]
    measure_from = time.perf_counter() + warmup
    deadline = measure_from + duration
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    counter = iter(range(10**9))
    warmed: dict[str, int] = {}

    async def worker() -> None:
        conn = Connection(host, port)
        try:
            while time.perf_counter() < deadline:
                n = next(counter)
                started = time.perf_counter()
                try:
                    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"{prefix}-{n}"}
                    status, _ = await conn.post("/v1/ingest", body(source, n), headers)
                except (ConnectionError, OSError, asyncio.IncompleteReadError):
                    status = 0
                    await conn.close()
                if started < measure_from:
                    warmed[str(status)] = warmed.get(str(status), 0) + 1
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
        finally:
            await conn.close()

    await asyncio.gather(mark_window(measure_from, deadline), *(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - measure_from
    return {"mode": "closed", "elapsed_s": elapsed, "latencies_s": latencies, "statuses": statuses,
            "warmup_statuses": warmed}


async def open_loop(host: str, port: int, token: str, source: str, rate: float, duration: float) -> dict[str, Any]:
    prefix = uuid.uuid4().hex[:10]
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(Connection(host, port))
    accepted: list[tuple[str, float]] = []
    statuses: dict[str, int] = {}
    latencies: list[float] = []

    async def one(n: int) -> None:
        conn = await pool.get()
        started = time.perf_counter()
        try:
            status, payload = await conn.post("/v1/ingest", body(source, n),
                                              {"Authorization": f"Bearer {token}", "Idempotency-Key": f"{prefix}-{n}"})
            latencies.append(time.perf_counter() - started)
            if status == 202:
                accepted.append((json.loads(payload)["record_id"], time.time()))
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            status = 0
            await conn.close()
        finally:
            pool.put_nowait(conn)
        statuses[str(status)] = statuses.get(str(status), 0) + 1

    tasks = []
    start = time.perf_counter()
    total = int(rate * duration)
    for n in range(total):
        target = start + n / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        await pool.get_nowait().close()
    return {"mode": "open", "elapsed_s": time.perf_counter() - start, "latencies_s": latencies,
            "statuses": statuses, "accepted": accepted}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--mode", choices=("closed", "open"), default="closed")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=0.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    install_uvloop()
    if args.mode == "closed":
        result = asyncio.run(closed_loop(args.host, args.port, args.token, args.source, args.concurrency,
                                         args.duration, args.warmup))
    else:
        result = asyncio.run(open_loop(args.host, args.port, args.token, args.source, args.rate, args.duration))
    with open(args.out, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
