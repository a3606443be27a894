from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio
import tritonclient.grpc as grpcclient
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.api_harness import api, api_env, receiver_port  # noqa: F401 (fixtures)
from tonewatch import services
from tonewatch.config import Settings

ModelFactory = Callable[[str, str, str], str]
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _services(running_services: list[services.ServiceStatus]) -> None:
    """Every integration test talks to the real services."""


@pytest.fixture
def python_model(settings: Settings) -> Iterator[ModelFactory]:
    """Write a Python-backend model into the real repository, load it; unload and delete after.

    Call it with (config.pbtxt body without the name line, model.py source, version folder).
    """
    created: list[str] = []
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)

    def make(config: str, source: str, version: str = "1") -> str:
        name = f"selftest_{uuid.uuid4().hex[:8]}"
        folder = settings.model_repository / name
        (folder / version).mkdir(parents=True)
        (folder / "config.pbtxt").write_text(f'name: "{name}"\n' + textwrap.dedent(config))
        (folder / version / "model.py").write_text(textwrap.dedent(source))
        created.append(name)
        client.load_model(name)
        return name

    try:
        yield make
    finally:
        for name in created:
            client.unload_model(name)
            shutil.rmtree(settings.model_repository / name, ignore_errors=True)
        client.close()


ROOT = Path(__file__).resolve().parents[2]
TONEWATCH = str(Path(sys.executable).parent / "tonewatch")


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The installed `tonewatch` console script, from the repository root."""
    return subprocess.run(
        [TONEWATCH, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def seed_model_dir(models_dir: Path) -> Path:
    """A real model trained by `tonewatch model train` on the project's own seed set (brief)."""
    result = run_cli(
        "model", "train", "--recipe", "quick", "--datasets", "seed", "--epochs", "1",
        "--trainable-layers", "1", env={"TONEWATCH_MODELS_DIR": str(models_dir)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "epoch 1/1: train loss" in result.stdout, "each epoch's figures are printed"
    (folder,) = [p for p in models_dir.iterdir() if (p / "spec.json").exists()]
    config = json.loads((folder / "training.json").read_text())["config"]
    assert (config["per_dataset_cap"], config["epochs"]) == (1000, 1), "recipe, then options"
    return folder


def triton(settings: Settings, call: Callable[[grpcclient.InferenceServerClient], T]) -> T:
    """One call on a Triton client of its own, closed after."""
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        return call(client)
    finally:
        client.close()


Probs = npt.NDArray[np.float32]


def infer_texts(settings: Settings, name: str, texts: list[str]) -> tuple[Probs, Probs, str]:
    """One request of `texts` to a served model: its sentiment and risk probabilities and the
    version that answered."""

    def infer(client: grpcclient.InferenceServerClient) -> tuple[Probs, Probs, str]:
        batch = np.array([[t.encode()] for t in texts], dtype=np.object_)
        tensor = grpcclient.InferInput("TEXT", list(batch.shape), "BYTES")
        tensor.set_data_from_numpy(batch)
        result = client.infer(name, [tensor], timeout=60)
        return (
            result.as_numpy("sentiment_probs"),
            result.as_numpy("risk_probs"),
            result.get_response().model_version,
        )

    return triton(settings, infer)


def _load(settings: Settings, name: str) -> None:
    triton(settings, lambda client: client.load_model(name))


def _unload(settings: Settings, name: str) -> None:
    try:
        triton(settings, lambda client: client.unload_model(name))
    finally:
        shutil.rmtree(settings.model_repository.resolve() / name, ignore_errors=True)


@pytest.fixture(scope="session")
def seed_calibration(settings: Settings, seed_model_dir: Path) -> list[str]:
    """What an int8 export of the seed model calibrates on, as `model export` draws it."""
    from retrain.calibration import calibration_for

    return calibration_for(seed_model_dir, settings.data_dir)


@pytest.fixture(scope="session")
def served_seed_model(
    settings: Settings, seed_model_dir: Path, seed_calibration: list[str]
) -> Iterator[str]:
    """The seed-trained model, exported (int8, as in production) and loaded in Triton."""
    from inference.model import load_model
    from inference.repository import export

    name = f"selftest_seed_{uuid.uuid4().hex[:8]}"
    export(
        load_model(seed_model_dir), settings.model_repository.resolve(), name,
        source="selftest", calibration=seed_calibration,
    )  # fmt: skip
    _load(settings, name)
    yield name
    _unload(settings, name)


@pytest.fixture(scope="session")
def stub_model(settings: Settings) -> Iterator[str]:
    """The constant-time keyword stub, loaded in Triton (exact expectations for fault tests)."""
    from inference.stub import install_stub

    name = f"selftest_stub_{uuid.uuid4().hex[:8]}"
    install_stub(settings.model_repository.resolve(), name)
    _load(settings, name)
    yield name
    _unload(settings, name)


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> None:
    from storage.db import migrate

    migrate(settings.database_url)


@pytest_asyncio.fixture(loop_scope="function")
async def engine(settings: Settings, migrated: None) -> AsyncIterator[AsyncEngine]:
    """An engine on the real, migrated database (in the test's own event loop)."""
    from storage.db import create_engine

    engine = create_engine(settings)
    yield engine
    await engine.dispose()
