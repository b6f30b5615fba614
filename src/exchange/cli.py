"""The ``exchange`` command: serve, migrate, stack, replay, reconcile, dlq.

The CLI is the process edge: it reads the environment (plus ``.exchange/stack.env``
for variables not set) exactly once and passes typed settings down.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from exchange.settings import Settings, SettingsError, load_settings, read_env_file, stack_partitions

__all__ = ("main",)

DEFAULT_STACK_ROOT = Path(".exchange")


def _environ(stack_root: Path) -> dict[str, str]:
    """Process environment over the local stack's env file (the environment wins)."""
    merged = read_env_file(stack_root / "stack.env")
    merged.update(os.environ)
    return merged


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(_environ(args.stack_root))
    except SettingsError as exc:
        print(f"exchange: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - keep `exchange stack ...` light

    from exchange.app import create_app  # noqa: PLC0415
    from exchange.ops.logging import configure_logging  # noqa: PLC0415
    from exchange.roles import parse_roles  # noqa: PLC0415

    settings = _settings(args)
    try:
        roles = parse_roles(args.role)
    except ValueError as exc:
        print(f"exchange: --role: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.observability.log_level)
    try:
        app = create_app(settings, roles)
    except SettingsError as exc:
        print(f"exchange: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        app,
        host=args.host or settings.http.host,
        port=args.port or settings.http.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=4,
        server_header=False,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises a captured SIGTERM after its graceful shutdown so the process
    # dies "by signal"; a completed drain is a clean exit for us, so that re-raise lands
    # on this no-op handler and we return 0.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    server.run()
    return 0 if server.started else 1


def _cmd_migrate(args: argparse.Namespace) -> int:
    from exchange.adapters.migrations import current_revision, upgrade_to_head  # noqa: PLC0415

    settings = _settings(args)
    try:
        upgrade_to_head(settings.database.dsn)
    except OSError as exc:
        print(f"exchange: migrate: cannot reach the database ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(f"database at revision {current_revision(settings.database.dsn)}")
    return 0


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def _cmd_bench(args: argparse.Namespace) -> int:
    from exchange.bench.runner import BenchConfig, run_bench  # noqa: PLC0415

    run_bench(BenchConfig(
        stack_root=args.stack_root, concurrency=args.concurrency, duration_s=args.duration,
        e2e_rate=args.e2e_rate, e2e_duration_s=args.e2e_duration, drain_rows=args.drain_rows,
        normalizer_records=args.normalizer_records, rounds=args.rounds,
    ))
    return 0


def _cmd_ops(args: argparse.Namespace) -> int:
    from exchange.ops_cli import run_ops_command  # noqa: PLC0415

    return run_ops_command(_settings(args), args)


def _cmd_stack(args: argparse.Namespace) -> int:
    from exchange.devstack import Stack, StackError  # noqa: PLC0415

    stack = Stack(args.stack_root)
    try:
        if args.action == "up":
            try:
                partitions = stack_partitions(_environ(args.stack_root))
            except SettingsError as exc:
                print(f"exchange: {exc}", file=sys.stderr)
                return 2
            stack.up(partitions=partitions)
            for st in stack.status():
                print(f"{st.name:9} {st.state:8} {st.address}")
            print(f"environment written to {stack.env_file}")
        elif args.action == "down":
            stack.down()
            print(f"stack stopped (data kept under {stack.root})")
        elif args.action == "status":
            states = stack.status()
            if args.json:
                print(json.dumps(
                    {s.name: {"state": s.state, "address": s.address, "pid": s.pid, "log": str(s.log)}
                     for s in states},
                    indent=2,
                ))
            else:
                for st in states:
                    print(f"{st.name:9} {st.state:8} {st.address:22} log: {st.log}")
        elif args.action == "stop":
            stack.stop(args.service)
            print(f"{args.service} stopped")
        elif args.action == "start":
            stack.start(args.service)
            print(f"{args.service} running")
    except StackError as exc:
        print(f"exchange stack {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exchange", description="Secure healthcare data exchange.")
    parser.add_argument(
        "--stack-root", type=Path, default=DEFAULT_STACK_ROOT,
        help="folder of the local stack (default .exchange); its stack.env fills unset variables",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server and background roles")
    serve.add_argument("--role", default="all",
                       help="all, or a comma list of ingest,tokenizer,publisher,normalizer,admin,query")
    serve.add_argument("--host", default=None, help="bind address (default HTTP_HOST)")
    serve.add_argument("--port", type=int, default=None, help="TCP port (default HTTP_PORT)")
    serve.set_defaults(func=_cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(func=_cmd_migrate)

    stack = sub.add_parser("stack", help="manage the local stack (PostgreSQL, Kafka, S3)")
    actions = stack.add_subparsers(dest="action", required=True)
    actions.add_parser("up", help="start everything; create database, topics, bucket")
    actions.add_parser("down", help="stop everything (data is kept)")
    status = actions.add_parser("status", help="show each service's state and address")
    status.add_argument("--json", action="store_true")
    for name in ("stop", "start"):
        act = actions.add_parser(name, help=f"{name} one service (data is kept)")
        act.add_argument("service", choices=("postgres", "kafka", "s3"))
    stack.set_defaults(func=_cmd_stack)

    bench = sub.add_parser("bench", help="benchmarks on the local stack -> benchmarks/results/latest.json")
    bench.add_argument("--concurrency", type=int, default=32)
    bench.add_argument("--duration", type=float, default=20.0, help="seconds of closed-loop ingest load")
    bench.add_argument("--e2e-rate", type=float, default=100.0)
    bench.add_argument("--e2e-duration", type=float, default=20.0)
    bench.add_argument("--drain-rows", type=int, default=50_000)
    bench.add_argument("--normalizer-records", type=int, default=10_000)
    bench.add_argument("--rounds", type=_at_least_one, default=3,
                       help="ingest, split ingest and floor alternate this many times within --duration")
    bench.set_defaults(func=_cmd_bench)

    from exchange.ops_cli import add_ops_commands  # noqa: PLC0415

    before = set(sub.choices)
    add_ops_commands(sub)
    for name in set(sub.choices) - before:
        sub.choices[name].set_defaults(func=_cmd_ops)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
