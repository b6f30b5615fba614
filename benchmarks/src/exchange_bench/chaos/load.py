"""The chaos run's client, a process of its own: ``python -m exchange_bench.chaos.load``.

Record ``n`` starts at ``n / rate`` seconds (a steady rate whatever the server does) and is
sent until it gets an answer that is not worth retrying: a 503, a connection error or a
timeout is retried with the same Idempotency-Key and body after a jittered exponential
backoff, as a well-behaved partner does. Every answer goes to a JSON-lines file as it comes
(the harness reads it during the run): key, attempt, status (0: connection error, -1: timeout),
content type, record id of a 202, and the body of every other answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import IO, Any

from exchange.runtime.eventloop import install_uvloop
from exchange_bench._http import Connection
from exchange_bench.chaos.records import record_body, record_key

__all__ = ("main",)

CONNECTION_ERROR = 0
TIMEOUT = -1
RETRIED = frozenset({503, CONNECTION_ERROR, TIMEOUT})


class _Pool:
    """Kept-alive connections, one per request in flight, reused afterwards."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._idle: list[Connection] = []

    def take(self) -> Connection:
        return self._idle.pop() if self._idle else Connection("127.0.0.1", self._port)

    def give(self, conn: Connection) -> None:
        self._idle.append(conn)


async def _send(pool: _Pool, body: bytes, headers: dict[str, str], timeout_s: float) -> tuple[int, str, bytes]:
    conn = pool.take()
    try:
        status, payload = await asyncio.wait_for(conn.post("/v2/ingest", body, headers), timeout_s)
    except TimeoutError:
        await conn.close()
        return TIMEOUT, "", b""
    except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        await conn.close()
        return CONNECTION_ERROR, "", b""
    pool.give(conn)
    return status, conn.content_type, payload


async def _record(n: int, args: argparse.Namespace, pool: _Pool, out: IO[str]) -> None:
    key = record_key(args.label, n)
    body = record_body(args.source, n)
    headers = {"Authorization": f"Bearer {args.token}", "Idempotency-Key": key}
    attempt = 0
    while True:
        attempt += 1
        status, content_type, payload = await _send(pool, body, headers, args.timeout)
        line: dict[str, Any] = {"key": key, "n": n, "attempt": attempt, "status": status, "ct": content_type,
                                "t": time.time()}
        if status == 202:
            line["record_id"] = json.loads(payload)["record_id"]
        elif status > 0:
            line["body"] = payload.decode("utf-8", "replace")
        out.write(json.dumps(line) + "\n")
        out.flush()
        if status not in RETRIED:
            return
        pause = min(args.max_backoff, 0.1 * 2 ** min(attempt - 1, 10))
        await asyncio.sleep(pause * random.uniform(0.5, 1.0))


async def _run(args: argparse.Namespace) -> None:
    pool = _Pool(args.port)
    started = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()
    # At most this many records in flight (0: no bound): with a rate above what the server takes,
    # a closed loop (the soak measures capacity so, with the records it then sends).
    in_flight = asyncio.Semaphore(args.concurrency or args.count)
    with open(args.out, "a", encoding="utf-8") as out:  # noqa: ASYNC230 - one small append per answer
        for n in range(args.start, args.start + args.count):
            await asyncio.sleep(max(0.0, started + (n - args.start) / args.rate - time.perf_counter()))
            await in_flight.acquire()
            task = asyncio.create_task(_record(n, args, pool, out))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(lambda _task: in_flight.release())
        while tasks:
            await asyncio.gather(*list(tasks))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--label", required=True, help="Idempotency-Key prefix")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--rate", type=float, required=True, help="records started a second")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds one request may take")
    parser.add_argument("--max-backoff", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=0, help="records in flight at most (default 0: no bound)")
    parser.add_argument("--out", required=True, help="JSON-lines file of every answer")
    args = parser.parse_args(argv)
    install_uvloop()
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
