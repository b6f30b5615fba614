"""The operator commands: ``exchange replay``, ``reconcile``, ``derive``, ``dlq``.

They run the same AdminService as the admin HTTP API, in the foreground.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import json
import re
import sys
import time
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, Task, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

from exchange.admin import AdminService
from exchange.bootstrap import admin_tools
from exchange.derive import MAX_BATCH, NAMES
from exchange.errors import DependencyUnavailable
from exchange.jobs import JobBusy, JobFinished, JobRun, LeaseLost
from exchange.normalize import DlqEntryNotFound, NotReprocessable
from exchange.replay import MAX_LIMIT, MAX_WINDOW_S
from exchange.runtime import eventloop
from exchange.settings import Settings
from exchange.web import BIGINT_MAX

__all__ = ("add_ops_commands", "run_ops_command")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


class _RateColumn(ProgressColumn):
    """Objects a second, from rich's own recent samples."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f}/s")


class _Throttled:
    """A job's progress (its ``as_dict``) as a plain line, at most once a second."""

    def __init__(self, label: str, stream: Any = sys.stderr) -> None:
        self._label = label
        self._stream = stream
        self._last = float("-inf")

    def __call__(self, progress: Any) -> None:
        if time.monotonic() - self._last >= 1.0:
            self._last = time.monotonic()
            print(f"{self._label}: {progress.as_dict()}", file=self._stream, flush=True)


class Counted(Protocol):
    """What a job reports as it goes: items done of a total, and how many it emitted or wrote."""

    total: int
    done: int
    emitted: int

    @property
    def rate(self) -> float: ...


class ProgressReporter(contextlib.AbstractContextManager["ProgressReporter"]):
    """rich's bar with count, rate and ETA on a TTY; a plain line at most once a second otherwise
    (logs and CI read those)."""

    def __init__(self, stream: Any = sys.stderr, *, label: str = "replay", emitted: str = "emitted") -> None:
        self._stream = stream
        self._label = label
        self._emitted = emitted
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._bar = RichProgress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(emitted + " {task.fields[emitted]}"),
            _RateColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=Console(file=stream),
        )
        self._task: TaskID | None = None
        self._last = 0.0

    def __enter__(self) -> ProgressReporter:
        if self._tty:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tty:
            self._bar.stop()

    def __call__(self, p: Counted) -> None:
        if self._tty:
            if self._task is None:
                self._task = self._bar.add_task(self._label, total=p.total, completed=p.done, emitted=p.emitted)
            self._bar.update(self._task, total=p.total, completed=p.done, emitted=p.emitted)
        elif time.monotonic() - self._last >= 1.0 or p.done >= p.total:
            self._last = time.monotonic()
            rate = p.rate
            eta = max(p.total - p.done, 0) / rate if rate > 0 else 0.0
            print(f"{self._label} progress: {p.done}/{p.total} {self._emitted}={p.emitted} rate={rate:.0f}/s "
                  f"eta={eta:.0f}s", file=self._stream, flush=True)


def _since(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        match = re.fullmatch(r"(\d+)([mhd])", text)
        if match:
            unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
            return dt.datetime.now(dt.UTC) - dt.timedelta(**{unit: int(match.group(1))})
        moment = dt.datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError("an ISO time or a duration like 30m, 2h, 7d, within the calendar") from None


# The CLI is a door too: the same bounds as the admin API (admin/_routes.py), refused by argparse.
def _bounded(kind: type[int] | type[float], low: float, high: float) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {kind.__name__}") from None
        if not low <= value <= high:  # NaN fails this too
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}")
        return value

    return parse


_WINDOW = _bounded(float, 0, MAX_WINDOW_S)
_ENTRY_ID = _bounded(int, 1, BIGINT_MAX)


def _reason(text: str) -> str:
    if not 1 <= len(text) <= 500:
        raise argparse.ArgumentTypeError("1 to 500 characters")
    return text


EXIT_BUSY = 3
"""``--resume`` of a job another process runs (its lease is being renewed): nothing was done."""


async def _resumed(admin: AdminService, actor: str, job_id: str, job_name: str, command: str,
                   **params: Any) -> JobRun | None:
    """The job ``--resume`` names, audited as resumed; None (and why, on stderr) when there is no
    such job of this kind (with these ``params``)."""
    found = await admin.jobs.get(job_id)
    if found is None or found.job_name != job_name or any(found.params.get(k) != v for k, v in params.items()):
        print(f"{command}: no {job_name} job {job_id}", file=sys.stderr)
        return None
    await admin.audit(actor, f"job.{job_name}.resume", "job", found.job_run_id, "accepted", found.params)
    return found


def _resume_wait(admin: AdminService) -> float:
    """How long ``--resume`` waits for another owner's lease: a little over one lease, so a dead
    owner's lease runs out within it and a live owner's renewal is seen."""
    return admin.jobs.lease_s * 1.5 + 1.0


class _NotRun(Exception):
    """The job was not run here; ``code`` is the exit status, the reason is on stderr."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


async def _run_owned(admin: AdminService, job: JobRun, command: str, *, resume: bool,
                     on_progress: Any = None) -> dict[str, Any]:
    """``run_job`` for a CLI command: a resumed job may wait out a dead owner's lease; a job another
    process runs, one finished meanwhile or one taken over while running exits non-zero."""
    try:
        return await admin.run_job(job, on_progress=on_progress, wait_s=_resume_wait(admin) if resume else 0.0)
    except JobBusy as exc:
        print(f"{command}: {exc}; not run here", file=sys.stderr)
        raise _NotRun(EXIT_BUSY) from None
    except JobFinished as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        raise _NotRun(0 if exc.status == "succeeded" else 1) from None
    except LeaseLost:
        print(f"{command}: job {job.job_run_id} was taken over by another process; stopped here", file=sys.stderr)
        raise _NotRun(EXIT_BUSY) from None


async def _replay(admin: AdminService, args: argparse.Namespace) -> int:
    actor = _actor()
    if args.verify:
        job = await admin.create_job("verify", {"source": args.source}, actor)
        result = await admin.run_job(job)
        _print_json(result)
        return 1 if result["missing_count"] > 0 else 0
    if args.resume:
        found = await _resumed(admin, actor, args.resume, "replay", "exchange replay")
        if found is None:
            return 2
        job = found
        if job.status == "succeeded":
            _print_json(job.result)
            return 0
    else:
        if not args.source:
            print("exchange replay: --source is required (or --resume JOB_ID)", file=sys.stderr)
            return 2
        params = {"source": args.source, "limit": args.limit, "emit_version": args.emit_version,
                  "dry_run": args.dry_run, "read_raw": args.read_raw}
        job = await admin.create_job("replay", params, actor)
    print(f"replay job {job.job_run_id}", file=sys.stderr, flush=True)
    with ProgressReporter() as progress:
        result = await _run_owned(admin, job, "exchange replay", resume=bool(args.resume), on_progress=progress)
    _print_json({"job_id": job.job_run_id, **result})
    return 0


async def _derive(admin: AdminService, args: argparse.Namespace) -> int:
    actor = _actor()
    if args.verify:
        job = await admin.create_job("derive-verify", {"dataset": args.dataset}, actor)
        report = await admin.run_job(job)
        _print_json(report)
        return 0 if report["agrees"] else 1
    if args.resume:
        found = await _resumed(admin, actor, args.resume, "derive", "exchange derive", dataset=args.dataset)
        if found is None:
            return 2
        job = found
    else:
        job = await admin.create_job(
            "derive", {"dataset": args.dataset, "dry_run": args.dry_run, "batch_size": args.batch_size}, actor)
    print(f"derive job {job.job_run_id}", file=sys.stderr, flush=True)
    result = await _run_owned(admin, job, "exchange derive", resume=bool(args.resume),
                              on_progress=_Throttled("derive progress"))
    _print_json({"job_id": job.job_run_id, **result})
    return 0


async def _linkage(admin: AdminService, args: argparse.Namespace) -> int:
    actor = _actor()
    if args.resume:
        found = await _resumed(admin, actor, args.resume, "linkage-rotate", "exchange linkage rotate")
        if found is None:
            return 2
        job = found
    else:
        job = await admin.create_job("linkage-rotate", {"batch_size": args.batch_size, "retire": not args.keep_old},
                                     actor)
    print(f"linkage rotation job {job.job_run_id}", file=sys.stderr, flush=True)
    with ProgressReporter(label="re-tokenize", emitted="tokenized") as progress:
        result = await _run_owned(admin, job, "exchange linkage rotate", resume=bool(args.resume),
                                  on_progress=progress)
    await admin.audit(actor, "job.linkage-rotate.finish", "job", job.job_run_id,
                      "verified" if result["verified"] else "incomplete",
                      {k: result[k] for k in ("records", "incomplete", "retired_key_ids", "tokens_removed")})
    _print_json({"job_id": job.job_run_id, **result})
    return 0 if result["verified"] else 1


def _batch_size(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_BATCH}")
    return int(text)


def _table(report: dict[str, Any]) -> str:
    lines = [f"source: {report['source']}   raw={report['raw_count']} manifest={report['manifest_count']} "
             f"canonical={report['canonical_count']} in_flight={report['in_flight_count']}",
             f"{'finding':24} {'count':>7}  first ids"]
    for name in ("orphans", "stuck", "missing_canonical", "canonical_without_raw"):
        item = report[name]
        lines.append(f"{name:24} {item['count']:>7}  {', '.join(item['record_ids'][:3])}")
    if "repaired" in report:
        lines.append(f"repaired: re_emitted={report['repaired']['re_emitted']} "
                     f"quarantined={report['repaired']['quarantined']}")
    lines.append("clean" if report["clean"] else "NOT clean")
    return "\n".join(lines)


async def _reconcile(admin: AdminService, args: argparse.Namespace) -> int:
    params = {"source": args.source, "repair": args.repair, "orphan_grace_s": args.orphan_grace_seconds,
              "stuck_after_s": args.stuck_after_seconds, "in_flight_s": args.in_flight_seconds}
    job = await admin.create_job("reconcile", params, _actor())
    report = await admin.run_job(job)
    if args.format == "table":
        print(_table(report))
    else:
        _print_json({"job_id": job.job_run_id, **report})
    return 0


async def _dlq(admin: AdminService, args: argparse.Namespace) -> int:
    actor = _actor()
    try:
        if args.dlq_action == "list":
            entries = await admin.dlq.list(topic=args.topic, stage=args.stage, error_type=args.error_type,
                                           status=args.status, since=args.since, limit=args.limit)
            await admin.audit(actor, "dlq.list", "dlq_event", None, "ok", {"count": len(entries)})
            if args.json:
                _print_json(entries)
            else:
                for e in entries:
                    print(f"{e['id']:>6} {e['failed_at']} {e['dlq_topic']:28} {e['error_stage']:9} "
                          f"{e['error_type']:24} {e['status']:11} {e['record_id']}")
        elif args.dlq_action == "inspect":
            entry = await admin.dlq.inspect(args.id)
            await admin.audit(actor, "dlq.inspect", "dlq_event", str(args.id), "ok")
            _print_json(entry)
        elif args.dlq_action == "reprocess":
            _print_json(await admin.dlq_reprocess(args.id, actor))
        elif args.dlq_action == "resolve":
            _print_json(await admin.dlq_resolve(args.id, actor, args.reason))
        elif args.dlq_action == "report":
            _print_json(await admin.dlq.report(args.hours))
    except DlqEntryNotFound as exc:
        print(f"exchange dlq: {exc}", file=sys.stderr)
        return 1
    except NotReprocessable as exc:
        print(f"exchange dlq: {exc}", file=sys.stderr)
        return 1
    return 0


def add_ops_commands(sub: Any) -> None:
    replay = sub.add_parser("replay", help="re-emit events for a source's raw objects (or --verify)")
    replay.add_argument("--source")
    replay.add_argument("--limit", type=_bounded(int, 1, MAX_LIMIT), default=None)
    replay.add_argument("--emit-version", choices=("v1", "v2", "auto"), default="auto")
    replay.add_argument("--dry-run", action="store_true")
    replay.add_argument("--read-raw", action="store_true",
                        help="read every object (by default one unchanged since ingest is built from the manifest)")
    replay.add_argument("--verify", action="store_true", help="compare raw vs canonical; exit 1 when missing")
    replay.add_argument("--resume", metavar="JOB_ID", help="continue an interrupted replay job")
    replay.set_defaults(ops="replay")

    rec = sub.add_parser("reconcile", help="raw <-> manifest <-> canonical; --repair fixes what it can")
    rec.add_argument("--source", required=True)
    rec.add_argument("--repair", action="store_true")
    rec.add_argument("--format", choices=("json", "table"), default="json")
    rec.add_argument("--orphan-grace-seconds", type=_WINDOW, default=600.0)
    rec.add_argument("--stuck-after-seconds", type=_WINDOW, default=900.0)
    rec.add_argument("--in-flight-seconds", type=_WINDOW, default=300.0)
    rec.set_defaults(ops="reconcile")

    derive = sub.add_parser("derive", help="rebuild a derived dataset from canonical rows (or --verify it)")
    derive.add_argument("dataset", choices=NAMES)
    derive.add_argument("--verify", action="store_true", help="compare with canonical rows; exit 1 on disagreement")
    derive.add_argument("--dry-run", action="store_true", help="count what a rebuild would change, write nothing")
    derive.add_argument("--batch-size", type=_batch_size, default=1000)
    derive.add_argument("--resume", metavar="JOB_ID", help="continue an interrupted derive job")
    derive.set_defaults(ops="derive")

    linkage = sub.add_parser("linkage", help="linkage keys: re-tokenize every record under the active key")
    linkage_actions = linkage.add_subparsers(dest="linkage_action", required=True)
    rotate = linkage_actions.add_parser(
        "rotate", help="tokenize every record under LINKAGE_KEY_ID from raw storage (and backfill persons), "
                       "then remove the other keys' tokens once verified; exit 1 if incomplete")
    rotate.add_argument("--batch-size", type=_batch_size, default=500)
    rotate.add_argument("--resume", metavar="JOB_ID", help="continue an interrupted rotation job")
    rotate.add_argument("--keep-old", action="store_true", help="verify, but keep the other keys' tokens")
    linkage.set_defaults(ops="linkage")

    dlq = sub.add_parser("dlq", help="DLQ tooling: list, inspect, reprocess, resolve, report")
    actions = dlq.add_subparsers(dest="dlq_action", required=True)
    lst = actions.add_parser("list")
    lst.add_argument("--topic")
    lst.add_argument("--stage")
    lst.add_argument("--error-type")
    lst.add_argument("--status", choices=("open", "reprocessed", "resolved"))
    lst.add_argument("--since", type=_since, help="ISO time or a duration like 30m, 2h, 7d")
    lst.add_argument("--limit", type=_bounded(int, 1, 1000), default=50)
    lst.add_argument("--json", action="store_true")
    for name in ("inspect", "reprocess"):
        act = actions.add_parser(name)
        act.add_argument("id", type=_ENTRY_ID)
    res = actions.add_parser("resolve")
    res.add_argument("id", type=_ENTRY_ID)
    res.add_argument("--reason", type=_reason, required=True)
    rep = actions.add_parser("report")
    rep.add_argument("--hours", type=_bounded(int, 1, 24 * 90), default=24)
    dlq.set_defaults(ops="dlq")


def run_ops_command(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        async with admin_tools(settings) as admin:
            try:
                if args.ops == "replay":
                    return await _replay(admin, args)
                if args.ops == "reconcile":
                    return await _reconcile(admin, args)
                if args.ops == "derive":
                    return await _derive(admin, args)
                if args.ops == "linkage":
                    return await _linkage(admin, args)
                return await _dlq(admin, args)
            except _NotRun as not_run:
                return not_run.code

    try:
        return eventloop.run(run())
    except DependencyUnavailable as exc:
        print(f"exchange {args.ops}: {exc}", file=sys.stderr)
        return 1
