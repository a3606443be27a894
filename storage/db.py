"""The Postgres engine, the mapping of connection failures, and schema migrations (Alembic)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from storage.exceptions import DatabaseUnavailable

if TYPE_CHECKING:
    from tonewatch.config import Settings

MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"
# Any constant will do, as long as every process that migrates uses the same one.
MIGRATION_LOCK_KEY: Final = 0x746F6E6577617463  # "tonewatc"
# A stopped (not dead) Postgres accepts TCP connections and never answers: bound the wait.
CONNECT_TIMEOUT_S: Final = 5


def create_engine(settings: Settings) -> AsyncEngine:
    """The async engine of one process (a worker or the API); dispose of it on shutdown."""
    url = psycopg_url(settings.database_url)
    return create_async_engine(
        url,
        pool_size=5,
        max_overflow=5,
        pool_timeout=10,
        pool_recycle=1800,
        # After a Postgres restart the pool holds dead connections: test each on checkout.
        pool_pre_ping=True,
        connect_args=_connect_args(url),
    )


@asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine for one command's work, disposed of when it is done."""
    engine = create_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


def psycopg_url(database_url: str) -> sa.URL:
    """The URL with the psycopg (3) driver, whichever Postgres driver it named."""
    url = sa.make_url(database_url)
    if url.get_backend_name() in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def commit_time(table: str) -> sa.ColumnElement[datetime]:
    """When a row of `table` was committed: Postgres's commit timestamp of the transaction
    that wrote it (needs `track_commit_timestamp`, which `services up` and compose set)."""
    xmin: sa.ColumnElement[int] = sa.literal_column(f"{table}.xmin")
    return sa.func.pg_xact_commit_timestamp(xmin, type_=sa.DateTime(timezone=True))


@contextmanager
def connection_errors() -> Iterator[None]:
    """Re-raise a failure to reach or keep talking to Postgres as DatabaseUnavailable."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        ):
            raise DatabaseUnavailable(f"Postgres unavailable: {_first_line(exc.orig)}") from exc
        raise
    except (sa_exc.TimeoutError, psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
        raise DatabaseUnavailable(f"Postgres unavailable: {_first_line(exc)}") from exc


def alembic_config() -> Config:
    """An Alembic configuration built in code: works from any directory and when installed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


def head_revision() -> str:
    """The newest revision of the migrations shipped with this package."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "storage/migrations has no revisions"
    return head


def migrate(database_url: str) -> None:
    """Upgrade the schema to the newest revision; a no-op when it is there already.

    Workers starting together queue on a Postgres advisory lock, so one upgrades while the
    others wait and then find nothing to do.
    """
    engine = _sync_engine(database_url)
    try:
        with connection_errors(), engine.begin() as conn:
            # Transaction-scoped: the commit that ends the upgrade releases it.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    engine = _sync_engine(database_url)
    try:
        with connection_errors(), engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _sync_engine(database_url: str) -> sa.Engine:
    url = psycopg_url(database_url)
    return sa.create_engine(url, poolclass=NullPool, connect_args=_connect_args(url))


def _connect_args(url: sa.URL) -> dict[str, object]:
    # UTC sessions: timestamps come back in UTC whatever the server's zone. Options given in
    # the URL (e.g. a search_path) are kept, since connect_args would replace them.
    options = url.query.get("options")
    given = options if isinstance(options, str) else " ".join(options or ())
    return {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "options": f"{given} -c TimeZone=UTC".strip(),
    }


def _first_line(error: BaseException | None) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
