"""The query benchmark's load process: ``concurrency`` connections asking for the same page of
100 records (REST or GraphQL) for ``duration`` seconds; prints its JSON result.

Every answer is checked (200, 100 records, no GraphQL error): a fast error is not a page."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import httpx

from exchange_bench.query import GRAPHQL_PAGE, PAGE


def _records(api: str, body: Any) -> list[Any]:
    found: list[Any] = body["records"] if api == "rest" else body["data"]["records"]["records"]
    return found


async def _run(args: argparse.Namespace) -> dict[str, object]:
    base = f"http://127.0.0.1:{args.port}"
    latencies: list[float] = []
    pages = 0
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {args.token}"}, timeout=30,
                                 limits=limits) as client:
        if args.api == "rest":
            request = client.build_request("GET", f"{base}/sources/{args.source}/records",
                                           params={"limit": PAGE, "since": args.since})
        else:
            request = client.build_request("POST", f"{base}/graphql", json={
                "query": GRAPHQL_PAGE, "variables": {"s": args.source, "since": args.since}})
        first = await client.send(request)
        first.raise_for_status()
        assert len(_records(args.api, first.json())) == PAGE, first.text
        deadline = time.perf_counter() + args.duration
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal pages
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                r = await client.send(request)
                if r.status_code != 200 or len(_records(args.api, r.json())) != PAGE:
                    raise RuntimeError(f"{args.api}: a bad answer ({r.status_code})")
                latencies.append((time.perf_counter() - t0) * 1000)
                pages += 1

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    return {"pages": pages, "elapsed_s": elapsed, "latencies_ms": latencies}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api", choices=("rest", "graphql"), required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--source", required=True)
    parser.add_argument("--since", required=True)
    parser.add_argument("--token", required=True)
    print(json.dumps(asyncio.run(_run(parser.parse_args()))))  # the result, for the runner


if __name__ == "__main__":
    main()
