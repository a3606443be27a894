"""Switching the served version on the real Triton under constant traffic (RELIABILITY F6,
M2): a good swap, a broken version, a killed export, and `tonewatch model rollback|list`.

The seed model is exported under a name of its own, so the real `tonewatch` model is never
touched; its folder, Triton state and registry rows are removed at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import tritonclient.grpc as grpcclient
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from inference.model import load_model
from inference.repository import (
    ServingConfig,
    clean_staging,
    export,
    pinned_version,
    staging_root,
    versions,
)
from inference.serving import (
    ServingError,
    SmokeTestFailed,
    serve_version,
    served_version,
    smoke_test,
    stage_candidate,
)
from storage import model_registry
from storage.tables import ModelVersionRow
from streams.topics import ensure_topics
from tests.integration.conftest import ROOT, ModelFactory, run_cli
from tests.integration.pipeline_harness import consume
from tests.integration.traffic import traffic
from tonewatch.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# One instance and fp32: the swap is the same as in production, and cheaper on 2 cores.
SERVING = ServingConfig(instances=1, quantize_int8=False)
TEXTS = ["$ACME shares plunge after a fraud probe", "Great support, thanks!", "Revenue in line"]


@dataclass
class SwapModel:
    name: str
    folder: Path
    trained_id: str


@pytest.fixture(scope="module")
def swap_model(settings: Settings, seed_model_dir: Path) -> Iterator[SwapModel]:
    """The seed model as versions 1 and 2 of a fresh model, version 1 served."""
    repository = settings.model_repository.resolve()
    name = f"selftest_swap_{uuid.uuid4().hex[:8]}"
    loaded = load_model(seed_model_dir)
    first = export(loaded, repository, name, SERVING, source=seed_model_dir.name)
    second = export(loaded, repository, name, SERVING, source=seed_model_dir.name)
    assert (first, second) == (1, 2)
    assert pinned_version(repository / name) == 1  # a new version is written, not served
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        client.load_model(name, client_timeout=120)
        yield SwapModel(name, repository / name, seed_model_dir.name)
    finally:
        client.unload_model(name)
        client.close()
        shutil.rmtree(repository / name, ignore_errors=True)


@pytest.mark.reliability("F6")
async def test_a_new_version_is_served_under_traffic_without_a_failed_request(
    settings: Settings, swap_model: SwapModel
) -> None:
    name = swap_model.name
    await asyncio.to_thread(serve_version, settings, name, 1)
    async with traffic(settings, name, TEXTS) as seen:
        await asyncio.to_thread(serve_version, settings, name, 2)
        swapped = time.monotonic()
        await seen.more()
    assert seen.failures == []
    assert "1" in {version for _, version in seen.responses}
    assert seen.versions_since(swapped) == {"2"}
    assert pinned_version(swap_model.folder) == 2  # a Triton restart serves 2 as well
    assert served_version(settings.triton_grpc_url, name) == 2


@pytest.mark.reliability("F6")
async def test_a_broken_version_fails_to_load_and_the_champion_keeps_serving(
    settings: Settings, swap_model: SwapModel
) -> None:
    name, folder = swap_model.name, swap_model.folder
    champion = served_version(settings.triton_grpc_url, name)
    assert champion is not None
    broken = versions(folder)[-1] + 1
    shutil.copytree(folder / "1", folder / str(broken))
    (folder / str(broken) / "model.onnx").write_bytes(b"\x08\x07 not a protobuf")
    try:
        async with traffic(settings, name, TEXTS) as seen:
            with pytest.raises(ServingError, match=f"version {broken} did not load") as failed:
                await asyncio.to_thread(serve_version, settings, name, broken, 60.0)
            failed_at = time.monotonic()
            await seen.more()
        assert f"version {champion} keeps serving" in str(failed.value)
        assert seen.failures == []
        assert seen.versions_since(0) == {str(champion)}
        assert seen.versions_since(failed_at) == {str(champion)}
        assert pinned_version(folder) == champion
    finally:
        shutil.rmtree(folder / str(broken))


@pytest.mark.reliability("M2")
def test_a_half_written_or_killed_export_is_never_served(
    settings: Settings, swap_model: SwapModel, seed_model_dir: Path
) -> None:
    name, folder = swap_model.name, swap_model.folder
    repository = settings.model_repository.resolve()
    champion = served_version(settings.triton_grpc_url, name)
    before = versions(folder)
    # A version folder that something wrote only half of: not pinned, so never loaded, even
    # when the model is reloaded (as after a Triton restart).
    half = folder / str(before[-1] + 1)
    half.mkdir()
    (half / "model.py").write_text((folder / "1" / "model.py").read_text())
    try:
        client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
        try:
            client.load_model(name, client_timeout=60)
        finally:
            client.close()
        assert served_version(settings.triton_grpc_url, name) == champion
        assert smoke_test(settings.triton_grpc_url, name, champion or 0, TEXTS).texts == 3
    finally:
        shutil.rmtree(half)

    # An export killed while it writes: only its staging folder remains, beside the repository.
    script = textwrap.dedent(f"""
        from pathlib import Path
        from inference.model import load_model
        from inference.repository import ServingConfig, export
        export(load_model(Path({str(seed_model_dir)!r})), Path({str(repository)!r}), {name!r},
               ServingConfig(instances=1, quantize_int8=True), calibration={TEXTS!r})
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    pattern = f"{name}.pid{process.pid}.*"
    try:
        deadline = time.monotonic() + 120
        while not any((p / "model.onnx").exists() for p in staging_root(repository).glob(pattern)):
            assert process.poll() is None, "the export ended before it could be killed"
            assert time.monotonic() < deadline, "the export never started writing"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(30)
    leftovers = list(staging_root(repository).glob(pattern))
    assert len(leftovers) == 1
    assert versions(folder) == before
    assert pinned_version(folder) == champion
    assert served_version(settings.triton_grpc_url, name) == champion
    assert leftovers[0] in clean_staging(repository)
    assert not leftovers[0].exists()


def test_a_candidate_is_smoke_tested_apart_and_removed(
    settings: Settings, swap_model: SwapModel, seed_model_dir: Path
) -> None:
    name = swap_model.name
    served = served_version(settings.triton_grpc_url, name)
    staged = settings.model_copy(update={"triton_model_name": name})
    result = stage_candidate(staged, load_model(seed_model_dir), SERVING, TEXTS)
    assert (result.model_name, result.version, result.texts) == (f"{name}__candidate", 1, 3)
    assert not (settings.model_repository.resolve() / result.model_name).exists()
    assert served_version(settings.triton_grpc_url, result.model_name) is None
    assert served_version(settings.triton_grpc_url, name) == served  # untouched


BAD_MODEL_CONFIG = """
    backend: "python"
    max_batch_size: 8
    input [ { name: "TEXT", data_type: TYPE_STRING, dims: [ 1 ] } ]
    output [
      { name: "sentiment_probs", data_type: TYPE_FP32, dims: [ 3 ] },
      { name: "risk_probs", data_type: TYPE_FP32, dims: [ 7 ] }
    ]
"""
BAD_MODEL = """
    import numpy as np
    import triton_python_backend_utils as pb_utils

    class TritonPythonModel:
        def execute(self, requests):
            responses = []
            for request in requests:
                n = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().shape[0]
                sentiment = np.full((n, 3), 0.5, dtype=np.float32)  # rows sum to 1.5
                risk = np.full((n, 7), 0.1, dtype=np.float32)
                responses.append(pb_utils.InferenceResponse([
                    pb_utils.Tensor("sentiment_probs", sentiment),
                    pb_utils.Tensor("risk_probs", risk),
                ]))
            return responses
"""


def test_the_smoke_test_rejects_wrong_answers_and_missing_versions(
    settings: Settings, python_model: ModelFactory
) -> None:
    name = python_model(BAD_MODEL_CONFIG, BAD_MODEL, "1")
    with pytest.raises(SmokeTestFailed, match=r"sentiment rows sum to \[1.5, 1.5\]"):
        smoke_test(settings.triton_grpc_url, name, 1, TEXTS[:2])
    with pytest.raises(SmokeTestFailed, match="version 2"):
        smoke_test(settings.triton_grpc_url, name, 2, TEXTS[:2])  # not loaded


@pytest_asyncio.fixture(loop_scope="function")
async def registry(engine: AsyncEngine, swap_model: SwapModel) -> AsyncIterator[AsyncEngine]:
    """The test model's registry rows are deleted before and after."""
    rows = delete(ModelVersionRow).where(ModelVersionRow.model_name == swap_model.name)
    async with engine.begin() as conn:
        await conn.execute(rows)
    yield engine
    async with engine.begin() as conn:
        await conn.execute(rows)


@pytest.mark.reliability("M2")
async def test_rollback_under_traffic_through_the_cli(
    settings: Settings, swap_model: SwapModel, models_dir: Path, registry: AsyncEngine
) -> None:
    name = swap_model.name
    env = {"TONEWATCH_TRITON_MODEL_NAME": name, "TONEWATCH_MODELS_DIR": str(models_dir)}
    await asyncio.to_thread(serve_version, settings, name, 1)

    # Served before the registry knew it: `model list` adopts it as the champion.
    listed = await asyncio.to_thread(run_cli, "model", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert report["serving_version"] == 1
    (adopted,) = report["versions"]
    assert (adopted["version"], adopted["status"], adopted["serving"]) == (1, "champion", True)
    assert adopted["trained_id"] == swap_model.trained_id
    assert "sentiment_macro_f1" in adopted["metrics"]["seed"]

    # Version 2 promoted as the retrain worker does it: serve, then record.
    await model_registry.record_candidate(registry, name, swap_model.trained_id, {}, version=2)
    await asyncio.to_thread(serve_version, settings, name, 2)
    await model_registry.promote(registry, name, 2)
    previous = await model_registry.previous_champion(registry, name)
    assert previous is not None
    assert previous.version == 1

    await ensure_topics(settings)
    async with traffic(settings, name, TEXTS) as seen:
        started = time.monotonic()
        rolled = await asyncio.to_thread(run_cli, "model", "rollback", "--json", env=env)
        done = time.monotonic()
        await seen.more()
    assert rolled.returncode == 0, rolled.stderr
    outcome = json.loads(rolled.stdout)
    assert (outcome["version"], outcome["previous_version"]) == (1, 2)
    assert outcome["event_published"] is True
    assert 0 < outcome["seconds"] <= outcome["total_seconds"] <= done - started
    assert outcome["seconds"] < 30, "a rollback takes seconds"
    assert seen.failures == []
    assert seen.versions_since(done) == {"1"}
    assert pinned_version(swap_model.folder) == 1

    history = {v.version: v for v in await model_registry.history(registry, name)}
    assert (history[1].status, history[1].reason) == ("champion", "rolled back from version 2")
    assert (history[2].status, history[2].reason) == ("retired", model_registry.ROLLED_BACK)
    assert await model_registry.previous_champion(registry, name) is None

    def ours(records: list[Any]) -> list[dict[str, Any]]:
        values = [json.loads(r.value) for r in records]
        return [v for v in values if v["model_name"] == name]

    events = ours(await consume(settings, "model-events", lambda records: bool(ours(records))))
    assert [(e["event"], e["version"], e["previous_version"]) for e in events] == [
        ("rolled_back", 1, 2)
    ]

    # Nothing left to roll back to: a clear error, and nothing changes.
    again = await asyncio.to_thread(run_cli, "model", "rollback", "--json", env=env)
    assert again.returncode == 1
    assert "no previous champion" in again.stderr
    listed = await asyncio.to_thread(run_cli, "model", "list", "--json", env=env)
    shown = {v["version"]: v for v in json.loads(listed.stdout)["versions"]}
    assert {v: (s["status"], s["serving"]) for v, s in shown.items()} == {
        1: ("champion", True),
        2: ("retired", False),
    }
