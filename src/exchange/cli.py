"""The ``exchange`` command: serve, migrate, replay, reconcile, dlq (+ plugins).

The CLI is the process edge: it reads the environment (plus ``.exchange/stack.env``
for variables not set) exactly once and passes typed settings down. Packages installed
beside this one add commands through the ``exchange.commands`` entry point group: a
callable that takes the subparsers and adds its own (``exchange stack``, ``exchange bench``).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from exchange.settings import Settings, SettingsError, load_settings, read_env_file

__all__ = ("PLUGIN_GROUP", "environ", "main", "settings_or_exit", "shared_port_socket")

DEFAULT_STACK_ROOT = Path(".exchange")
PLUGIN_GROUP = "exchange.commands"


def environ(stack_root: Path) -> dict[str, str]:
    """Process environment over the local stack's env file (the environment wins)."""
    merged = read_env_file(stack_root / "stack.env")
    merged.update(os.environ)
    return merged


def settings_or_exit(args: argparse.Namespace) -> Settings:
    """The settings, or exit 2 with one line naming the bad variable."""
    try:
        return load_settings(environ(args.stack_root))
    except SettingsError as exc:
        print(f"exchange: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - keep `exchange stack ...` light

    from exchange.app import create_app  # noqa: PLC0415
    from exchange.ops.logging import configure_logging  # noqa: PLC0415
    from exchange.roles import parse_roles  # noqa: PLC0415
    from exchange.runtime.heap import tune_collector  # noqa: PLC0415

    settings = settings_or_exit(args)
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
    tune_collector()
    host, port = args.host or settings.http.host, args.port or settings.http.port
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
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
    if args.reuse_port:
        try:
            listener = shared_port_socket(host, port)
        except OSError as exc:
            print(f"exchange: --reuse-port: cannot bind {host}:{port} ({exc.strerror})", file=sys.stderr)
            return 1
        server.run(sockets=[listener])
    else:
        server.run()
    return 0 if server.started else 1


def shared_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not yet listening.

    Every ``exchange serve --reuse-port`` on the same port binds its own such socket and the
    kernel spreads new connections over those that listen (a hash of the connection's
    addresses), so several processes serve one port with no balancer in front; a process that
    dies leaves the group and the others take its new connections. The socket listens only when
    uvicorn serves on it (asyncio calls ``listen`` after the lifespan has started), so a process
    still starting receives no connection. Linux semantics: only processes of the same user may
    join the group.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def _cmd_migrate(args: argparse.Namespace) -> int:
    from exchange.adapters.migrations import (  # noqa: PLC0415
        MigrationsNotFoundError,
        current_revision,
        upgrade_to_head,
    )

    settings = settings_or_exit(args)
    try:
        upgrade_to_head(settings.database.dsn, args.migrations)
    except MigrationsNotFoundError as exc:
        print(f"exchange: migrate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"exchange: migrate: cannot reach the database ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(f"database at revision {current_revision(settings.database.dsn, args.migrations)}")
    return 0


def _cmd_config(_args: argparse.Namespace) -> int:
    from exchange.settings import reference_markdown  # noqa: PLC0415

    print(reference_markdown(), end="")
    return 0


def _cmd_ops(args: argparse.Namespace) -> int:
    from exchange.ops_cli import run_ops_command  # noqa: PLC0415

    return run_ops_command(settings_or_exit(args), args)


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
    serve.add_argument("--reuse-port", action="store_true",
                       help="bind with SO_REUSEPORT: several processes started so share the port "
                       "(the kernel spreads connections over them; docs/operations.md)")
    serve.set_defaults(func=_cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--migrations", type=Path, default=Path("migrations"),
                         help="the migrations folder (default: migrations in the working folder)")
    migrate.set_defaults(func=_cmd_migrate)

    config = sub.add_parser("config", help="print every environment variable, its default and meaning (markdown)")
    config.set_defaults(func=_cmd_config)

    for plugin in metadata.entry_points(group=PLUGIN_GROUP):
        # Commands of packages installed beside this one (the dev stack, the benchmark):
        # present in a clone's environment, absent from the image.
        plugin.load()(sub)

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
