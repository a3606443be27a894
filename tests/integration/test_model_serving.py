"""A trained model, exported into the real Triton, answers like the model in-process."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from inference.model import LoadedModel, load_model
from inference.repository import ServingConfig, export, pinned_version
from inference.serving import serve_version
from tests.integration.conftest import infer_texts
from tonewatch.config import Settings

pytestmark = pytest.mark.integration

TEXTS = [
    "$ACME shares plunge after regulators open a fraud probe",
    "Battery died after two days and the charger started smoking",
    "Thanks, that fixed it! Great support.",
    "I am closing my account, this is the third outage this week",
    "Quarterly revenue was in line with guidance.",
]


@pytest.fixture(scope="module")
def seed_model(seed_model_dir: Path) -> LoadedModel:
    return load_model(seed_model_dir)


@pytest.fixture
def served(settings: Settings, seed_model: LoadedModel) -> Iterator[tuple[str, int]]:
    name = f"selftest_model_{uuid.uuid4().hex[:8]}"
    repository = settings.model_repository.resolve()
    # fp32, so that the served graph can be held to the eager model's numbers.
    version = export(seed_model, repository, name, ServingConfig(quantize_int8=False), "selftest")
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        client.load_model(name)
        yield name, version
    finally:
        client.unload_model(name)
        client.close()
        shutil.rmtree(repository / name, ignore_errors=True)


def test_triton_matches_the_in_process_model(
    settings: Settings, seed_model: LoadedModel, served: tuple[str, int]
) -> None:
    name, version = served
    sentiment, risk, served_version = infer_texts(settings, name, TEXTS)
    expected_sentiment, expected_risk = seed_model.predict(TEXTS)
    assert served_version == str(version)
    assert sentiment.shape == (len(TEXTS), 3)
    assert risk.shape == (len(TEXTS), 7)
    np.testing.assert_allclose(sentiment, expected_sentiment.numpy(), atol=1e-4)
    np.testing.assert_allclose(risk, expected_risk.numpy(), atol=1e-4)
    np.testing.assert_allclose(sentiment.sum(axis=1), 1.0, atol=1e-5)


def test_a_new_export_is_a_new_immutable_version(
    settings: Settings,
    seed_model: LoadedModel,
    served: tuple[str, int],
    seed_calibration: list[str],
) -> None:
    name, first = served
    folder = settings.model_repository.resolve() / name
    before = {p.name: p.stat().st_mtime_ns for p in (folder / str(first)).iterdir()}
    repository = settings.model_repository.resolve()
    second = export(seed_model, repository, name, calibration=seed_calibration)
    assert second == first + 1
    assert {p.name: p.stat().st_mtime_ns for p in (folder / str(first)).iterdir()} == before
    assert not list((settings.model_repository.resolve().parent / ".export-staging").glob("*"))
    assert pinned_version(folder) == first  # written, not served
    assert infer_texts(settings, name, TEXTS[:1])[2] == str(first)
    serve_version(settings, name, second)
    assert infer_texts(settings, name, TEXTS[:1])[2] == str(second)


def test_the_int8_export_stays_close_to_the_model(
    settings: Settings,
    seed_model: LoadedModel,
    served: tuple[str, int],
    seed_calibration: list[str],
) -> None:
    name, _ = served
    repository = settings.model_repository.resolve()
    version = export(
        seed_model, repository, name, ServingConfig(quantize_int8=True),
        calibration=seed_calibration,
    )  # fmt: skip
    serve_version(settings, name, version)
    sentiment, risk, served_version = infer_texts(settings, name, TEXTS)
    assert served_version == str(version)
    expected_sentiment, expected_risk = seed_model.predict(TEXTS)
    np.testing.assert_allclose(sentiment.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(sentiment - expected_sentiment.numpy()).max() < 0.25
    assert np.abs(risk - expected_risk.numpy()).max() < 0.25
    serving = json.loads((repository / name / str(version) / "serving.json").read_text())
    assert serving["int8"] is True
    assert serving["quantisation"]["scheme"] == "static int8 (QDQ)"
    assert serving["quantisation"]["calibration_texts"] == len(seed_calibration)
