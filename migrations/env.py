"""Alembic environment for Exchange: online mode only, async engine over asyncpg.

The DSN comes from ``config.attributes["dsn"]`` (set by
``exchange.adapters.migrations``) or, for the plain alembic CLI, from
``alembic -x dsn=postgresql://... upgrade head``.  The environment is never
consulted.  ``postgresql://`` and ``postgres://`` DSNs are rewritten to the
``postgresql+asyncpg://`` driver.

Because this module drives the async engine with ``asyncio.run``, alembic
commands must be invoked from synchronous code (not from inside a running
event loop).
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config

# Schema is explicit SQL in the revisions; there is no MetaData to autogenerate from.
target_metadata = None

_ASYNC_DRIVER = "postgresql+asyncpg"
_ACCEPTED_SCHEMES = frozenset({"postgres", "postgresql", "postgresql+asyncpg"})


def _configure_logging() -> None:
    """Apply alembic.ini logging for the alembic CLI.

    Programmatic callers (``exchange migrate``) own logging themselves and set
    ``config.attributes["configure_logging"] = False``.
    """
    if config.config_file_name is None:
        return
    if not config.attributes.get("configure_logging", True):
        return
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _dsn() -> str:
    dsn = config.attributes.get("dsn")
    if isinstance(dsn, str) and dsn:
        return dsn
    x_dsn = context.get_x_argument(as_dictionary=True).get("dsn")
    if x_dsn:
        return x_dsn
    raise RuntimeError(
        "no database DSN: set config.attributes['dsn'] or pass `-x dsn=postgresql://...`"
    )


def async_url(dsn: str) -> URL:
    """Return ``dsn`` as a SQLAlchemy URL using the asyncpg driver."""
    url = make_url(dsn)
    if url.drivername not in _ACCEPTED_SCHEMES:
        raise ValueError(
            f"unsupported DSN scheme {url.drivername!r}; expected postgresql:// or postgres://"
        )
    return url.set(drivername=_ASYNC_DRIVER)


def _do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async_migrations() -> None:
    # Pass the URL object (not str(url)): str() would mask the password.
    engine = create_async_engine(async_url(_dsn()), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    asyncio.run(_run_async_migrations())


_configure_logging()

if context.is_offline_mode():
    raise RuntimeError(
        "offline (--sql) mode is not supported; run migrations against a database"
    )

run_migrations_online()
