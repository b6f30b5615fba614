"""Programmatic Alembic entry point, used by ``exchange migrate`` and the tests.

The revisions live in the repository's ``migrations/`` folder next to
``alembic.ini`` (explicit SQL, see ``migrations/versions``).  The package may be
installed non-editable, so the folder is located from this file rather than
from the working directory: first the repository root
(``Path(__file__).resolve().parents[3]``), then each further ancestor (which
covers a virtualenv inside the repository).

``migrations/env.py`` drives SQLAlchemy's async engine with ``asyncio.run``,
so every function here must be called from synchronous code, never from
inside a running event loop (use ``asyncio.to_thread`` from async code).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

_INI_NAME = "alembic.ini"
_MIGRATIONS_DIR = "migrations"


class MigrationsNotFoundError(RuntimeError):
    """The ``migrations/`` folder (with its env.py) could not be located."""


def _candidate_roots() -> Iterator[Path]:
    here = Path(__file__).resolve()
    repo_root = here.parents[3]  # src/exchange/adapters/migrations.py -> repo root
    yield repo_root
    for ancestor in here.parents:
        if ancestor != repo_root:
            yield ancestor


def _find_project_root() -> Path:
    for root in _candidate_roots():
        if (root / _MIGRATIONS_DIR / "env.py").is_file():
            return root
    raise MigrationsNotFoundError(
        f"no {_MIGRATIONS_DIR}/env.py found above {Path(__file__).resolve()}; "
        "run from a checkout of the repository"
    )


def _config(dsn: str) -> Config:
    root = _find_project_root()
    ini = root / _INI_NAME
    config = Config(str(ini)) if ini.is_file() else Config()
    # Explicit, cwd-independent script location (ConfigParser needs '%' escaped).
    config.set_main_option(
        "script_location", str(root / _MIGRATIONS_DIR).replace("%", "%%")
    )
    # The DSN travels as an attribute, never through the ini (no interpolation,
    # no password in config files).  The host application owns logging.
    config.attributes["dsn"] = dsn
    config.attributes["configure_logging"] = False
    return config


def upgrade_to_head(dsn: str) -> None:
    """Apply every pending revision to the database at ``dsn``.

    ``dsn`` is a ``postgresql://`` or ``postgres://`` URL (rewritten to the
    asyncpg driver by env.py).  Idempotent: a database already at head is left
    untouched.  Must be called from synchronous code: env.py runs the async
    engine with ``asyncio.run``, which fails inside a running event loop.
    """
    command.upgrade(_config(dsn), "head")


def current_revision(dsn: str) -> str | None:
    """Return the revision the database at ``dsn`` is at, or None if unmigrated.

    Must be called from synchronous code (see :func:`upgrade_to_head`).
    """
    config = _config(dsn)
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
