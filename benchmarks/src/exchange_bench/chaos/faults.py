"""The faults the chaos run causes, each for real, and the schedule that spaces them.

| kind | what happens |
|---|---|
| ``serve_kill`` | ``kill -9`` of the front process (ingest, publisher, admin, query), started again |
| ``kafka`` | the broker stopped for the hold, started again |
| ``s3`` | SeaweedFS stopped for the hold, started again |
| ``postgres`` | PostgreSQL stopped for the hold, started again (a restart) |
| ``tokenizer`` | the tokenizer process killed for the hold, started again on its port |
| ``crash_after_put`` | for the hold, a trigger ends the ingest transaction's backend after the S3 PUT |
| ``normalizer_kill`` | ``kill -9`` of the normalizer while it is processing, started again |

A fault's end is when what it broke is back (the service started, the trigger dropped); its
recovery is the time from then until a record accepted after that end is canonical.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from exchange_bench.chaos.deployment import Deployment
from exchange_stack import Stack

__all__ = ("FAULT_KINDS", "Fault", "FaultContext", "cause", "schedule")

FAULT_KINDS: tuple[str, ...] = ("serve_kill", "kafka", "s3", "postgres", "tokenizer", "crash_after_put",
                                "normalizer_kill")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    started_at: float
    """Epoch seconds."""
    ended_at: float
    recovery_s: float | None
    """None: no record accepted after the end was canonical within the wait."""


@dataclass
class FaultContext:
    stack: Stack
    deployment: Deployment
    dsn: str
    source: str
    hold_s: float
    crash_hold_s: float
    recovery_timeout_s: float
    report: Callable[[str], None]
    loading: Callable[[], bool]
    """False once the load process is done: no new record will show recovery then."""


def schedule(kinds: tuple[str, ...], rounds: int) -> list[str]:
    """Every kind once a round, in a different order each round (a fault does not always
    follow the same one)."""
    out: list[str] = []
    for r in range(rounds):
        shift = (r * 3) % len(kinds)
        out += list(kinds[shift:] + kinds[:shift])
    return out


_CRASH_FUNCTION = """
CREATE OR REPLACE FUNCTION chaos_crash_after_put() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_terminate_backend(pg_backend_pid());
  RETURN NEW;
END $$
"""


async def _sql(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _crash_after_put(ctx: FaultContext) -> None:
    """The ingest transaction's connection dies after the batch's PUTs, before its commit: the
    requests answer 503 and leave objects without rows (orphans for reconcile)."""
    source = ctx.source.replace("'", "''")
    asyncio.run(_sql(ctx.dsn, _CRASH_FUNCTION,
                     "CREATE TRIGGER chaos_crash BEFORE INSERT ON raw_object_manifest FOR EACH ROW "
                     f"WHEN (NEW.source = '{source}') EXECUTE FUNCTION chaos_crash_after_put()"))
    try:
        time.sleep(ctx.crash_hold_s)
    finally:
        asyncio.run(_sql(ctx.dsn, "DROP TRIGGER chaos_crash ON raw_object_manifest"))


def _normalizer_records(ctx: FaultContext) -> float:
    with urllib.request.urlopen(f"{ctx.deployment.normalizer.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("exchange_normalizer_records_total"))


def _normalizer_kill(ctx: FaultContext) -> None:
    """Killed while it is processing: its counter moved in the last fraction of a second."""
    deadline = time.monotonic() + 10
    before = _normalizer_records(ctx)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = _normalizer_records(ctx)
        if now > before:
            break
        before = now
    ctx.deployment.normalizer.kill()
    ctx.deployment.normalizer.start()


def _outage(ctx: FaultContext, service: str) -> None:
    ctx.stack.stop(service)
    time.sleep(ctx.hold_s)
    ctx.stack.start(service)


def _tokenizer(ctx: FaultContext) -> None:
    ctx.deployment.tokenizer.kill()
    time.sleep(ctx.hold_s)
    ctx.deployment.tokenizer.start()


def _serve_kill(ctx: FaultContext) -> None:
    ctx.deployment.front.kill()
    ctx.deployment.front.start()


_CAUSES: dict[str, Callable[[FaultContext], None]] = {
    "serve_kill": _serve_kill,
    "kafka": lambda ctx: _outage(ctx, "kafka"),
    "s3": lambda ctx: _outage(ctx, "s3"),
    "postgres": lambda ctx: _outage(ctx, "postgres"),
    "tokenizer": _tokenizer,
    "crash_after_put": _crash_after_put,
    "normalizer_kill": _normalizer_kill,
}


async def _first_canonical_after(dsn: str, after: dt.datetime, timeout_s: float,
                                 loading: Callable[[], bool]) -> float | None:
    """Epoch seconds of the first canonical row of a record ingested after ``after``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and loading():
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            await asyncio.sleep(0.5)
            continue
        try:
            while time.monotonic() < deadline and loading():
                first = await conn.fetchval(
                    "SELECT extract(epoch FROM min(normalized_at))::float8 FROM canonical_records "
                    "WHERE ingested_at > $1", after)
                if first is not None:
                    return float(first)
                await asyncio.sleep(0.25)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await asyncio.sleep(0.5)
        finally:
            await conn.close()
    return None


def cause(ctx: FaultContext, kind: str) -> Fault:
    """Cause one fault, undo it, and wait until records flow again."""
    started = time.time()
    _CAUSES[kind](ctx)
    ended = time.time()
    first = asyncio.run(_first_canonical_after(ctx.dsn, dt.datetime.fromtimestamp(ended, dt.UTC),
                                               ctx.recovery_timeout_s, ctx.loading))
    recovery = None if first is None else round(max(0.0, first - ended), 3)
    ctx.report(f"fault {kind}: {ended - started:.1f} s, recovered in "
               + ("(not within the wait)" if recovery is None else f"{recovery:.1f} s"))
    return Fault(kind, round(started, 3), round(ended, 3), recovery)
