"""Alembic environment: migrates over the connection that storage.db.migrate hands in.

Run by the `alembic` command itself (e.g. `alembic -c storage/alembic.ini revision
--autogenerate -m ...`), it connects to `sqlalchemy.url` or else TONEWATCH_DATABASE_URL.
"""

from __future__ import annotations

import logging.config

import sqlalchemy as sa
from alembic import context

from storage.db import psycopg_url
from storage.tables import Base


def _database_url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from tonewatch.config import Settings

    return Settings().database_url


def run_offline() -> None:
    context.configure(
        url=psycopg_url(_database_url()), literal_binds=True, target_metadata=Base.metadata
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.config.config_file_name is not None:
    logging.config.fileConfig(context.config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_offline()
elif (given := context.config.attributes.get("connection")) is not None:
    run_online(given)
else:
    engine = sa.create_engine(psycopg_url(_database_url()), poolclass=sa.NullPool)
    with engine.connect() as conn:
        run_online(conn)
    engine.dispose()
