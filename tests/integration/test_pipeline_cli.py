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
from tonewatch.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_bench_e2e_prints_the_figures_beside_the_stub_and_triton_alone(
    served_seed_model: str,
) -> None:
    result = run_cli(
        "bench", "e2e", "--messages", "400", "--latency-rate", "200", "--json",
        env={"TONEWATCH_TRITON_MODEL_NAME": served_seed_model},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    for key in ("messages", "throughput_msgs_per_s", "p50_ms", "p99_ms", "lost", "dup_alerts"):
        assert key in report
        assert key in report["stub"]
    assert report["messages"] >= 400
    assert report["throughput_msgs_per_s"] > 0
    assert report["triton_alone"]["messages_per_s"] > 0
    assert report["vs_triton_alone"] > 0
    # The stub reads the generated stream exactly as planted: nothing may be lost or doubled.
    assert report["stub"]["lost"] == 0
    assert report["stub"]["dup_alerts"] == 0
    assert report["stub"]["burst"]["unexpected"] == 0
    assert report["dup_alerts"] == 0


def test_demo_runs_the_main_job(served_seed_model: str, seed_model_dir: Path) -> None:
    result = run_cli(
        "demo", "--messages", "400", "--rate", "400", "--wait-s", "20",
        env={
            "TONEWATCH_TRITON_MODEL_NAME": served_seed_model,
            "TONEWATCH_MODELS_DIR": str(seed_model_dir.parent),
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"reusing the trained model {seed_model_dir.name}" in out
    assert "4/5 replay" in out
    assert "5/5 result" in out
    assert "dup_alerts 0" in out
    assert "LRANGE tw:demo-" in out
    # The key it prints opens the web pages for the demo's tenant.
    token = re.search(r"tw_[0-9a-f]{16}\.\S+", out)
    assert token is not None, out
    key = asyncio.run(_authenticate(Settings(), token.group()))
    assert key is not None
    assert key.tenant.startswith("demo-")
    assert set(key.scopes) == {"read", "subscribe", "label"}


async def _authenticate(settings: Settings, token: str) -> api_keys.ApiKey | None:
    engine = create_engine(settings)
    try:
        return await api_keys.authenticate(engine, token)
    finally:
        await engine.dispose()
