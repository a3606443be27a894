"""The stub model in the running Triton: same interface as the real one, lexicon verdicts."""

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

from inference.client import TritonClassifier
from inference.stub import install_stub
from tonewatch.config import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def stub_name(settings: Settings) -> Iterator[str]:
    name = f"stub_{uuid.uuid4().hex[:8]}"
    folder = install_stub(settings.model_repository, name)
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        client.load_model(name)
        yield name
    finally:
        client.unload_model(name)
        client.close()
        shutil.rmtree(folder, ignore_errors=True)


async def test_stub_serves_the_lexicon_verdicts(settings: Settings, stub_name: str) -> None:
    texts = [
        "$ACME shares plunge as SEC probe widens into accounting fraud",
        "$NOVA posts record earnings, shares surge 11%",
        "$ORBX to present at the Global Tech conference on Monday",
        "The kettle caught fire on the second day. Terrible.",
        "This is the worst service ever. I'm closing my account.",
    ]
    async with TritonClassifier(settings.triton_grpc_url, model_name=stub_name) as client:
        predictions = await client.classify(texts * 20)  # several batches
    assert [p.sentiment for p in predictions[:5]] == [
        "negative",
        "positive",
        "neutral",
        "negative",
        "negative",
    ]
    flagged = [sorted(r for r, v in p.risks.items() if v >= 0.8) for p in predictions[:5]]
    assert flagged == [
        ["fraud", "legal_regulatory"],
        [],
        [],
        ["product_safety"],
        ["churn"],
    ]
    assert predictions[2].scores["neutral"] == pytest.approx(0.8)
    assert {p.model_version for p in predictions} == {"1"}
    assert predictions[5:10] == predictions[:5]


def test_install_is_idempotent(tmp_path: Path) -> None:
    folder = install_stub(tmp_path, "stub_x")
    config = folder / "config.pbtxt"
    assert config.read_text().count('name: "stub_x"') == 1
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert install_stub(tmp_path, "stub_x") == folder
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before
    assert sorted(str(p.relative_to(folder)) for p in before) == ["1/model.py", "config.pbtxt"]
    with pytest.raises(ValueError, match="model name"):
        install_stub(tmp_path, "../escape")
