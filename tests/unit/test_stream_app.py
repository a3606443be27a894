"""The faust app is configured from Settings alone (STYLE: unprefixed variables override faust)."""

from pathlib import Path

import pytest

from streams.app import create_app
from tonewatch.config import Settings

pytestmark = pytest.mark.unit


def test_unprefixed_environment_variables_do_not_reach_faust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "BROKER_URL": "kafka://elsewhere:9092", "WEB_PORT": "1", "STORE": "rocksdb://",
        "APP_DATADIR": "/nonexistent", "TOPIC_PARTITIONS": "99",
        "PROCESSING_GUARANTEE": "exactly_once",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    settings = Settings(var_dir=tmp_path, kafka_port=29092, kafka_partitions=6, worker_app_id="x1")
    conf = create_app(settings).conf
    assert [str(url) for url in conf.broker] == ["kafka://127.0.0.1:29092"]
    assert str(conf.store) == "memory:"
    assert conf.topic_partitions == 6
    assert conf.datadir.is_relative_to(tmp_path)
    assert str(conf.processing_guarantee) == "ProcessingGuarantee.AT_LEAST_ONCE"
    assert conf.web_enabled is False
    assert conf.consumer_auto_offset_reset == "earliest"
    assert conf.producer_acks == -1


def test_the_app_has_an_agent_per_source_and_no_tables(tmp_path: Path) -> None:
    app = create_app(Settings(var_dir=tmp_path, kafka_topic_prefix="p.", worker_app_id="x2"))
    topics = sorted(t for agent in app.agents.values() for t in agent.channel.topics)
    assert topics == ["p.chats", "p.news", "p.reviews"]
    assert not app.tables  # entity state lives in Postgres: nothing to recover on rebalance
