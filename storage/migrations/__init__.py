"""Alembic migrations of the Postgres schema (a package, so that installs ship them)."""
