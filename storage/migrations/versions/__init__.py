"""Alembic revisions, applied in order by storage.db.migrate."""
