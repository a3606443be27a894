"""Storage: Postgres (the record, SQLAlchemy 2 + Alembic) and Redis (live feed, cache)."""
