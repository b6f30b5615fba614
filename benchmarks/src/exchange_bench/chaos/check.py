"""After the faults: the checker's verdict, from the database and the object store.

1. Wait until every accepted record is canonical or in ``dlq_events``.
2. Dead-lettered records (the tokenizer outage's, should there be any) are counted by cause,
   re-emitted through the admin API (``POST /admin/dlq/{id}/reprocess``), and waited for.
3. Every 202 must then have exactly one canonical row; a canonical row no client holds a 202
   for is a duplicate (the client retried and got a second record), as is a key answered 202
   with two record ids; every canonical row's raw object must be in the bucket.
4. ``exchange reconcile --repair`` must find the orphans the crashes left (objects written
   before a commit that never came), move them to quarantine, and a second pass be clean.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import asyncpg

from exchange.adapters.objectstore import make_object_store
from exchange.settings import load_settings
from exchange_bench._http import Connection

__all__ = ("drain", "judge", "reconcile", "reprocess_dlq")


async def _where(dsn: str, ids: list[str]) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        canonical = await conn.fetchval("SELECT count(*) FROM canonical_records WHERE record_id = ANY($1::uuid[])", ids)
        open_dlq = await conn.fetchval(
            "SELECT count(DISTINCT record_id) FROM dlq_events WHERE record_id = ANY($1::uuid[]) AND status = 'open' "
            "AND record_id NOT IN (SELECT record_id FROM canonical_records)", ids)
    finally:
        await conn.close()
    return int(canonical), int(open_dlq)


def drain(dsn: str, ids: list[str], timeout_s: float) -> dict[str, Any]:
    """Wait until every record is canonical or dead-lettered (open); the counts and the wait."""
    started = time.monotonic()
    while True:
        canonical, dead = asyncio.run(_where(dsn, ids))
        if canonical + dead >= len(ids) or time.monotonic() - started > timeout_s:
            return {"canonical": canonical, "dead_lettered": dead, "waited_s": round(time.monotonic() - started, 1),
                    "complete": canonical + dead >= len(ids)}
        time.sleep(1.0)


async def _admin(port: int, token: str, method: str, path: str) -> tuple[int, Any, str]:
    conn = Connection("127.0.0.1", port)
    try:
        status, body = await conn.request(method, path, b"" if method == "POST" else None,
                                          {"Authorization": f"Bearer {token}"})
    finally:
        await conn.close()
    return status, json.loads(body) if body else None, body.decode("utf-8", "replace")


def reprocess_dlq(port: int, token: str, responses: list[str]) -> dict[str, Any]:
    """Every open DLQ entry, counted by error type and stage, then re-emitted through the admin
    API. ``responses`` collects the bodies for the privacy sweep."""
    causes: Counter[str] = Counter()
    reprocessed = failed = 0
    while True:
        status, body, text = asyncio.run(_admin(port, token, "GET", "/admin/dlq?status=open&limit=1000"))
        responses.append(text)
        if status != 200:
            raise RuntimeError(f"GET /admin/dlq answered {status}")
        entries = body["entries"]
        if not entries:
            break
        for entry in entries:
            causes[f"{entry['error_stage']}/{entry['error_type']}"] += 1
            status, _, text = asyncio.run(_admin(port, token, "POST", f"/admin/dlq/{entry['id']}/reprocess"))
            responses.append(text)
            if status == 202:
                reprocessed += 1
            else:
                failed += 1
        if failed:
            break
    return {"entries": sum(causes.values()), "by_cause": dict(causes), "reprocessed": reprocessed,
            "reprocess_failed": failed}


async def _canonical_rows(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT record_id::text, raw_object_key FROM canonical_records")
    finally:
        await conn.close()
    return {r["record_id"]: r["raw_object_key"] for r in rows}


async def _object_keys(env: dict[str, str]) -> set[str]:
    store = make_object_store(load_settings(env).object_store)
    try:
        return {info.key async for info in store.list_objects("")}
    finally:
        await store.close()


def judge(dsn: str, env: dict[str, str], accepted: dict[str, str], keys_with_two_ids: int) -> dict[str, Any]:
    """Lost, duplicated, and canonical rows without their raw object."""
    canonical = asyncio.run(_canonical_rows(dsn))
    objects = asyncio.run(_object_keys(env))
    wanted = set(accepted.values())
    lost = sorted(wanted - set(canonical))
    unasked = sorted(set(canonical) - wanted)
    without_raw = sorted(rid for rid, key in canonical.items() if key not in objects)
    return {"accepted_records": len(wanted), "canonical_rows": len(canonical), "lost": len(lost),
            "lost_record_ids": lost[:20], "duplicated": len(unasked) + keys_with_two_ids,
            "canonical_without_a_202": len(unasked), "keys_with_two_record_ids": keys_with_two_ids,
            "canonical_without_raw": len(without_raw), "raw_objects": len(objects)}


def _reconcile(env: dict[str, str], source: str, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "exchange.cli", "reconcile", "--source", source, "--orphan-grace-seconds", "0",
         "--in-flight-seconds", "0", *extra],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=600, check=False)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"exchange reconcile exited {out.returncode}: {out.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def reconcile(env: dict[str, str], source: str, outputs: list[str]) -> dict[str, Any]:
    """``exchange reconcile --repair``, then once more without repair: it must be clean."""
    repaired = _reconcile(env, source, "--repair")
    after = _reconcile(env, source)
    outputs += [json.dumps(repaired), json.dumps(after)]
    return {"orphans_found": repaired["orphans"]["count"], "quarantined": repaired["repaired"]["quarantined"],
            "re_emitted": repaired["repaired"]["re_emitted"],
            "missing_canonical": repaired["missing_canonical"]["count"],
            "stuck": repaired["stuck"]["count"], "clean_after_repair": after["clean"]}
