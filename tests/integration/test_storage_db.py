"""storage.db and storage.messages against the real Postgres: migrations, message records."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import messages, tables
from storage.db import create_engine, current_revision, head_revision, migrate
from storage.exceptions import DatabaseUnavailable
from tests.integration.storage_fixtures import CLOSED_PORT_DATABASE, T0, new_tenant, scored
from tonewatch.config import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_schema(settings: Settings) -> Iterator[str]:
    """The database URL of a schema of the test's own, empty (a database never migrated)."""
    schema = f"selftest_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(settings.database_url, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        url = sa.make_url(settings.database_url)
        url = url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _differences(database_url: str, metadata: sa.MetaData) -> list[object]:
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrate_is_idempotent(empty_schema: str) -> None:
    assert current_revision(empty_schema) is None
    migrate(empty_schema)
    migrate(empty_schema)
    assert current_revision(empty_schema) == head_revision()


def test_workers_starting_together_migrate_once(empty_schema: str) -> None:
    # Separate processes, like workers, released together once they have imported storage.
    start_at = time.time() + 4
    script = (
        "import time; from storage.db import migrate; "
        f"time.sleep(max(0, {start_at} - time.time())); migrate({empty_schema!r})"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [worker.communicate(timeout=60)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, errors
    assert current_revision(empty_schema) == head_revision()


def test_models_match_the_migrations(empty_schema: str) -> None:
    migrate(empty_schema)
    assert _differences(empty_schema, tables.Base.metadata) == []
    # The comparison does see a difference when there is one.
    changed = sa.MetaData()
    for table in tables.Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["alerts"].append_column(sa.Column("extra", sa.Text()))
    assert [d[0] for d in _differences(empty_schema, changed)] == ["add_column"]  # type: ignore[index]


def test_migrate_works_from_any_directory(empty_schema: str, tmp_path: Path) -> None:
    script = f"from storage.db import migrate; migrate({empty_schema!r})"
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=60)
    assert current_revision(empty_schema) == head_revision()


def test_unreachable_database_is_database_unavailable() -> None:
    began = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as caught:
        migrate(CLOSED_PORT_DATABASE)
    assert isinstance(caught.value.__cause__, sa.exc.OperationalError)
    with pytest.raises(DatabaseUnavailable):
        current_revision(CLOSED_PORT_DATABASE)
    assert time.monotonic() - began < 5


async def test_unreachable_database_fails_the_async_functions(settings: Settings) -> None:
    engine = create_engine(settings.model_copy(update={"database_url": CLOSED_PORT_DATABASE}))
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await messages.find(engine, [("t", "news", "1")])
        assert caught.value.__cause__ is not None
        with pytest.raises(DatabaseUnavailable):
            await messages.record(engine, [scored(new_tenant(), "1")])
    finally:
        await engine.dispose()


async def test_messages_round_trip(engine: AsyncEngine) -> None:
    tenant = new_tenant()
    decomposed = unicodedata.normalize("NFD", "Crème brûlée recall at Café Zoë 🍮")
    news = scored(
        tenant,
        "n-1",
        offset=7,
        text=decomposed,
        meta={"url": "https://example.com/a", "tags": ["recall", 2, 2.5, None, True], "n": {}},
    )
    chat = scored(
        tenant,
        "c-1",
        offset=8,
        source="chats",
        entity=None,
        conversation_id="conv-9",
        speaker="customer",
        turn=3,
        text="Where is my refund?",
    )
    assert await messages.record(engine, [news, chat]) == 2

    found = await messages.find(engine, [news.message.key, chat.message.key, (tenant, "news", "x")])

    assert found == {news.message.key: news, chat.message.key: chat}
    assert found[news.message.key].message.text == unicodedata.normalize("NFC", decomposed)
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                sa.select(tables.Message.text, tables.Message.text_sha256).where(
                    tables.Message.tenant == tenant, tables.Message.message_id == "n-1"
                )
            )
        ).one()
    assert stored == (news.message.text, news.message.text_sha256)
    assert await messages.find(engine, []) == {}


async def test_recording_again_is_a_no_op(engine: AsyncEngine) -> None:
    tenant = new_tenant()
    batch = [scored(tenant, f"m-{i}", offset=i) for i in range(3)]
    assert await messages.record(engine, batch) == 3
    assert await messages.record(engine, batch) == 0
    # Re-sent under the same id with other words: the first text stays, without a verdict on
    # the second.
    resent = scored(tenant, "m-0", offset=9, text="Something else entirely")
    assert await messages.record(engine, [resent]) == 0
    # Concurrent writers of one batch (a rebalance) store it once.
    twice = [scored(tenant, f"r-{i}", offset=10 + i) for i in range(5)]
    counts = await asyncio.gather(*(messages.record(engine, twice) for _ in range(4)))
    assert sum(counts) == 5

    assert await _counts(engine, tenant) == (8, 8)
    found = await messages.find(engine, [m.message.key for m in batch])
    assert found == {m.message.key: m for m in batch}


async def test_one_prediction_per_model_version(engine: AsyncEngine) -> None:
    tenant = new_tenant()
    first = scored(tenant, "m-1", model_version="1")
    second = scored(tenant, "m-1", model_version="2", scored_at=T0 + timedelta(hours=1))
    assert await messages.record(engine, [first]) == 1
    assert await messages.record(engine, [second, second]) == 0
    assert await messages.record(engine, [first, second]) == 0

    assert await _counts(engine, tenant) == (1, 2)
    assert await messages.find(engine, [first.message.key]) == {first.message.key: second}
    async with engine.begin() as conn:
        (pk,) = (
            await conn.execute(sa.select(tables.Message.id).where(tables.Message.tenant == tenant))
        ).one()
        duplicate = sa.insert(tables.Prediction).values(
            message_pk=pk, sentiment="neutral", scores={}, risks={}, model_version="2",
            scored_at=T0,
        )  # fmt: skip
        with pytest.raises(sa.exc.IntegrityError):
            await conn.execute(duplicate)


async def _counts(engine: AsyncEngine, tenant: str) -> tuple[int, int]:
    """(messages, predictions) stored for the tenant."""
    count = sa.select(sa.func.count()).where(tables.Message.tenant == tenant)
    async with engine.connect() as conn:
        stored = (await conn.execute(count.select_from(tables.Message))).scalar_one()
        verdicts = (
            await conn.execute(count.select_from(tables.Prediction).join(tables.Message))
        ).scalar_one()
    return stored, verdicts


async def test_entity_states_round_trip_and_replace(engine: AsyncEngine) -> None:
    from storage import entity_states

    tenant = new_tenant()
    a, b = (tenant, "news", "$ACME"), (tenant, "chats", "conv-1")
    assert await entity_states.load(engine, [a, b]) == {}
    await entity_states.save(engine, {a: {"window": None, "n": 1}, b: {"turns": [0.1, 0.2]}})
    await entity_states.save(engine, {a: {"window": {"start": 60.0}, "n": 2}})
    assert await entity_states.load(engine, [a, b, (tenant, "news", "other")]) == {
        a: {"window": {"start": 60.0}, "n": 2},
        b: {"turns": [0.1, 0.2]},
    }
