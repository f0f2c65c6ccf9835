"""Apply the Alembic migrations of ``schema/migrations`` from code; no alembic.ini needed.

The functions are synchronous and run their own event loop (the async engine uses asyncpg), so
call them from sync code or through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from shared.settings import redact_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def async_url(url: str) -> str:
    """The URL for SQLAlchemy's asyncpg dialect, whatever PostgreSQL scheme it was given."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise ValueError(f"not a PostgreSQL URL: {redact_url(url)}")
    return "postgresql+asyncpg://" + rest


def config(url: str) -> Config:
    """An Alembic config for ``url``. The URL travels in ``attributes``, not in the ini options,
    so a percent-encoded password is not mangled by configparser interpolation."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = async_url(url)
    return cfg


def head() -> str | None:
    """The newest revision of the migrations."""
    return ScriptDirectory.from_config(config("postgresql://")).get_current_head()


def upgrade(url: str, revision: str = "head") -> None:
    log.info("migrating %s up to %s", redact_url(url), revision)
    command.upgrade(config(url), revision)


def downgrade(url: str, revision: str) -> None:
    log.info("migrating %s down to %s", redact_url(url), revision)
    command.downgrade(config(url), revision)


def current(url: str) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""

    async def read() -> str | None:
        engine = create_async_engine(async_url(url), poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
        finally:
            await engine.dispose()

    return asyncio.run(read())
