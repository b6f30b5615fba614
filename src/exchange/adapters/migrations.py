"""Programmatic Alembic entry point, used by ``exchange migrate``, the tests and the benchmark.

The revisions are explicit SQL in a ``migrations/`` folder (with ``alembic.ini`` beside it):
the repository's, or ``/app/migrations`` in the image. The caller names the folder; the CLI
defaults to ``migrations`` in the working folder (``exchange migrate --migrations DIR``).

``migrations/env.py`` drives SQLAlchemy's async engine with ``asyncio.run``,
so every function here must be called from synchronous code, never from
inside a running event loop (use ``asyncio.to_thread`` from async code).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

__all__ = ("DEFAULT_MIGRATIONS", "MigrationsNotFoundError", "current_revision", "upgrade_to", "upgrade_to_head")

DEFAULT_MIGRATIONS = Path("migrations")
_INI_NAME = "alembic.ini"


class MigrationsNotFoundError(RuntimeError):
    """The ``migrations/`` folder (with its env.py) is not where the caller said."""


def _config(dsn: str, migrations: Path) -> Config:
    folder = migrations.resolve()
    if not (folder / "env.py").is_file():
        raise MigrationsNotFoundError(
            f"no env.py in {folder}; run from the repository (or the image's /app) or pass --migrations"
        )
    ini = folder.parent / _INI_NAME
    config = Config(str(ini)) if ini.is_file() else Config()
    # Explicit, cwd-independent script location (ConfigParser needs '%' escaped).
    config.set_main_option("script_location", str(folder).replace("%", "%%"))
    # The DSN travels as an attribute, never through the ini (no interpolation,
    # no password in config files).  The host application owns logging.
    config.attributes["dsn"] = dsn
    config.attributes["configure_logging"] = False
    return config


def upgrade_to_head(dsn: str, migrations: Path = DEFAULT_MIGRATIONS) -> None:
    """Apply every pending revision to the database at ``dsn``.

    ``dsn`` is a ``postgresql://`` or ``postgres://`` URL (rewritten to the
    asyncpg driver by env.py).  Idempotent: a database already at head is left
    untouched.  Must be called from synchronous code: env.py runs the async
    engine with ``asyncio.run``, which fails inside a running event loop.
    """
    upgrade_to(dsn, "head", migrations)


def upgrade_to(dsn: str, revision: str, migrations: Path = DEFAULT_MIGRATIONS) -> None:
    """Apply the revisions up to ``revision`` (as ``upgrade_to_head``; tests of an older schema)."""
    command.upgrade(_config(dsn, migrations), revision)


def current_revision(dsn: str, migrations: Path = DEFAULT_MIGRATIONS) -> str | None:
    """Return the revision the database at ``dsn`` is at, or None if unmigrated.

    Must be called from synchronous code (see :func:`upgrade_to_head`).
    """
    config = _config(dsn, migrations)
    script = ScriptDirectory.from_config(config)
    heads: list[str] = []

    def _capture(
        rev: Sequence[str] | str | None, _context: MigrationContext
    ) -> list[Any]:
        if isinstance(rev, str):
            heads.append(rev)
        elif rev is not None:
            heads.extend(rev)
        return []  # no migration steps: read-only

    with EnvironmentContext(config, script, fn=_capture, dont_mutate=True):
        script.run_env()
    if len(heads) > 1:
        raise RuntimeError(f"database has several alembic heads: {sorted(heads)}")
    return heads[0] if heads else None
