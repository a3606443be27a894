import uuid

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select, text
from sqlalchemy.exc import IntegrityError

from tonewatch.config import Settings

pytestmark = pytest.mark.integration


def test_round_trip_through_sqlalchemy(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    metadata = MetaData()
    table = Table(
        f"selftest_{uuid.uuid4().hex[:8]}",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("dedup_key", String, unique=True, nullable=False),
    )
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(table), [{"dedup_key": "a"}, {"dedup_key": "b"}])
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(table), [{"dedup_key": "a"}])
        with engine.connect() as conn:
            keys = conn.execute(select(table.c.dedup_key).order_by(table.c.id)).scalars().all()
            user = conn.execute(text("SELECT current_user")).scalar_one()
        assert keys == ["a", "b"]
        assert user == "tonewatch"  # the project's own role, not the superuser
    finally:
        metadata.drop_all(engine)
        engine.dispose()
