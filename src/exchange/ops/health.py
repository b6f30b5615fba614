"""GET /healthz (liveness), GET /health/detailed (dependencies, backlog, tasks), GET /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from exchange.ops.metrics import Metrics

__all__ = ("HealthProbe", "detailed_health", "health_routes", "probe_all")

HealthProbe = Callable[[], Awaitable[dict[str, Any] | None]]


def _tasks(state: State) -> dict[str, Any]:
    supervisor = state.supervisor
    tasks: dict[str, Any] = {}
    for name, s in supervisor.statuses.items():
        task: dict[str, Any] = {"state": s.state, "restarts": s.restarts, "last_error_type": s.last_error_type}
        if s.waiting_for:
            task["waiting_for"] = list(s.waiting_for)
        tasks[name] = task
    return tasks


@get("/healthz", include_in_schema=True, summary="Liveness")
async def healthz(state: State) -> dict[str, Any]:
    return {"status": "ok", "roles": sorted(state.roles), "tasks": _tasks(state)}


async def _probe(name: str, probe: HealthProbe, timeout: float) -> tuple[str, dict[str, Any]]:
    started = time.perf_counter()
    try:
        details = await asyncio.wait_for(probe(), timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; only its type is reported
        return name, {"status": "down", "error_type": type(exc).__name__,
                      "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    result: dict[str, Any] = {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    result.update(details or {})
    return name, result


async def probe_all(probes: dict[str, HealthProbe], timeout: float) -> dict[str, dict[str, Any]]:
    """Every probe at once: ``status`` up or down (with the error's type), its latency and details."""
    return dict(await asyncio.gather(*(_probe(n, p, timeout) for n, p in probes.items())))


@get("/health/detailed", summary="Dependencies, backlog and task states (503 when degraded)",
     responses={503: ResponseSpec(data_container=dict[str, Any], generate_examples=False,
                                  description="Degraded: a dependency is down, or a task is not running "
                                              "(waiting for a dependency, restarting); the same body")})
async def health_detailed(state: State) -> Response[dict[str, Any]]:
    body = await detailed_health(state)
    return Response(body, status_code=503 if body["status"] == "degraded" else 200)


async def detailed_health(state: State) -> dict[str, Any]:
    """What ``/health/detailed`` answers: every probe of this process and its tasks' states (the
    operator console shows the same)."""
    probes: dict[str, HealthProbe] = state.health_probes
    results = await probe_all(probes, 3.0)
    tasks = _tasks(state)
    degraded = any(r["status"] != "up" for r in results.values()) or any(
        t["state"] != "running" for t in tasks.values()
    )
    return {
        "status": "degraded" if degraded else "ok",
        "roles": sorted(state.roles),
        "dependencies": results,
        "tasks": tasks,
    }


@get("/metrics", summary="Prometheus metrics", media_type="text/plain; version=0.0.4; charset=utf-8")
async def metrics_endpoint(state: State) -> bytes:
    metrics: Metrics = state.metrics
    # The gauges read at scrape (outbox, DLQ, jobs, consumer lag, dependencies), concurrently;
    # each hook keeps its own failures (a dependency down must not fail the scrape).
    await asyncio.gather(*(hook() for hook in state.metrics_hooks))
    return metrics.render()


health_routes = (healthz, health_detailed, metrics_endpoint)
