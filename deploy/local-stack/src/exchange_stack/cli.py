"""``exchange stack up|down|status|stop|start``: the local stack from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from exchange.cli import environ
from exchange.settings import SettingsError, stack_partitions

__all__ = ("register",)


def register(sub: Any) -> None:
    """Add ``stack`` to the ``exchange`` command's subparsers (entry point ``exchange.commands``)."""
    stack = sub.add_parser("stack", help="manage the local stack (PostgreSQL, Kafka, S3)")
    actions = stack.add_subparsers(dest="action", required=True)
    actions.add_parser("up", help="start everything; create database, topics, bucket")
    actions.add_parser("down", help="stop everything (data is kept)")
    status = actions.add_parser("status", help="show each service's state and address")
    status.add_argument("--json", action="store_true")
    for name in ("stop", "start"):
        act = actions.add_parser(name, help=f"{name} one service (data is kept)")
        act.add_argument("service", choices=("postgres", "kafka", "s3"))
    stack.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the entry point is loaded for every `exchange` command.
    from exchange_stack import Stack, StackError  # noqa: PLC0415

    stack = Stack(args.stack_root)
    try:
        if args.action == "up":
            try:
                partitions = stack_partitions(environ(args.stack_root))
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
