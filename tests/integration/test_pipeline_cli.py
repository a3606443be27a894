"""`tonewatch bench e2e` and `tonewatch demo` run end to end on the real services."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from storage import api_keys
from storage.db import create_engine
from tests.integration.conftest import run_cli
from tonewatch.bench.ledger import COUNTERS
from tonewatch.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WATCHED = ("dup_alerts_postgres", "dup_alerts_redis", "dup_alerts_topic")


def test_bench_e2e_prints_the_figures_beside_the_stub_and_triton_alone(
    served_seed_model: str,
) -> None:
    result = run_cli(
        "bench", "e2e", "--messages", "400", "--latency-rate", "200", "--json",
        env={"TONEWATCH_TRITON_MODEL_NAME": served_seed_model},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    for key in ("messages", "throughput_msgs_per_s", "p50_ms", "p99_ms", *COUNTERS,
                "alert_precision", "alert_recall"):  # fmt: skip
        assert key in report
        assert key in report["stub"]
    assert report["messages"] >= 400
    assert report["throughput_msgs_per_s"] > 0
    assert report["triton_alone"]["messages_per_s"] > 0
    assert report["vs_triton_alone"] > 0
    # The stub reads the generated stream exactly as planted: nothing may be lost, missed,
    # raised unasked or doubled at any sink the run watched (Postgres, Redis, the topic).
    stub = report["stub"]
    for name in ("lost_messages", "missed_alerts", "unexpected_alerts", *WATCHED):
        assert stub[name] == 0, (name, stub)
    assert (stub["alert_precision"], stub["alert_recall"]) == (1.0, 1.0)
    assert stub["burst"]["expected_alerts"] > 0
    assert report["lost_messages"] == 0
    for name in WATCHED:
        assert report[name] == 0, (name, report)


def test_demo_runs_the_main_job(stub_model: str, seed_model_dir: Path) -> None:
    # The stub scores every generated message as planted, so the demo must pass its ledger;
    # a model of the seed set alone misses most planted alerts, and the demo says so.
    result = run_cli(
        "demo", "--messages", "400", "--rate", "400", "--wait-s", "20",
        env={
            "TONEWATCH_TRITON_MODEL_NAME": stub_model,
            "TONEWATCH_MODELS_DIR": str(seed_model_dir.parent),
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"reusing the trained model {seed_model_dir.name}" in out
    assert "4/5 replay" in out
    assert "5/5 result" in out
    # The demo exits 1 on any of these above 0; the line shows each of them.
    for name in ("lost_messages", "missed_alerts", *WATCHED, "dup_sse"):
        assert f"{name} 0" in out, name
    assert "nothing lost, nothing missed, nothing doubled" in out
    assert "LRANGE tw:demo-" in out
    # The key it prints opens the web pages for the demo's tenant.
    token = re.search(r"tw_[0-9a-f]{16}\.\S+", out)
    assert token is not None, out
    key = asyncio.run(_authenticate(Settings(), token.group()))
    assert key is not None
    assert key.tenant.startswith("demo-")
    assert set(key.scopes) == {"read", "subscribe", "label"}


def test_demo_fails_and_says_which_when_planted_alerts_are_missed(
    stub_model: str, seed_model_dir: Path
) -> None:
    # Windows of at most a few messages never reach a volume of 1000: no spike rule fires.
    result = run_cli(
        "demo", "--messages", "400", "--rate", "400", "--wait-s", "10",
        env={
            "TONEWATCH_TRITON_MODEL_NAME": stub_model,
            "TONEWATCH_MODELS_DIR": str(seed_model_dir.parent),
            "TONEWATCH_RULE_MIN_VOLUME": "1000",
        },
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    verdict = result.stdout.split("the demo failed its ledger:", 1)[1].split("\n", 1)[0]
    assert verdict.lstrip().startswith("missed_alerts "), verdict
    assert "/volume_spike" in verdict
    assert "lost_messages" not in verdict  # what failed, and only that


async def _authenticate(settings: Settings, token: str) -> api_keys.ApiKey | None:
    engine = create_engine(settings)
    try:
        return await api_keys.authenticate(engine, token)
    finally:
        await engine.dispose()
