from pathlib import Path

import pytest

from tonewatch.config import Settings

pytestmark = pytest.mark.unit


def test_env_prefix_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TONEWATCH_KAFKA_PORT", "29092")
    monkeypatch.setenv("TONEWATCH_VAR_DIR", "/tmp/elsewhere")
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:29092"
    assert settings.var_dir == Path("/tmp/elsewhere")
    assert settings.model_repository == Path("/tmp/elsewhere/triton/models")


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PORT", "1")
    monkeypatch.setenv("REDIS_URL", "redis://nowhere:1/0")
    settings = Settings()
    assert settings.kafka_port == 19092
    assert settings.redis_url == "redis://127.0.0.1:16379/0"


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://u:p@h:1/d", "postgres://u:p@h:1/d", "postgresql+psycopg://u:p@h:1/d"],
)
def test_database_url_gets_the_psycopg_driver(dsn: str) -> None:
    assert Settings(database_url=dsn).database_url == "postgresql+psycopg://u:p@h:1/d"
