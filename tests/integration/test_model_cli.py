"""`tonewatch model train|eval|export` and `tonewatch classify`, end to end on the real Triton."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

from tests.integration.conftest import run_cli
from tonewatch.config import Settings

pytestmark = pytest.mark.integration


def test_train_writes_a_complete_version(seed_model_dir: Path) -> None:
    for name in ("spec.json", "heads.pt", "metrics.json", "training.json", "MODEL_CARD.md"):
        assert (seed_model_dir / name).is_file(), name
    for plot in ("confusion.png", "training_curve.png"):
        assert (seed_model_dir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (seed_model_dir / "MODEL_CARD.md").read_text()
    assert "| seed |" in card
    assert "Limits" in card
    metrics = json.loads((seed_model_dir / "metrics.json").read_text())
    assert set(metrics["seed"]["risk"]) == {
        "fraud", "legal_regulatory", "financial_distress", "service_outage",
        "product_safety", "churn", "toxicity",
    }  # fmt: skip


def test_eval_reports_json_per_dataset(seed_model_dir: Path, models_dir: Path) -> None:
    result = run_cli(
        "model", "eval", "--model", seed_model_dir.name, "--data", "seed", "--json",
        env={"TONEWATCH_MODELS_DIR": str(models_dir)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    seed = report["datasets"]["seed"]
    assert report["model"] == seed_model_dir.name
    assert 0.0 <= seed["sentiment_macro_f1"] <= 1.0
    assert 0.0 <= seed["sentiment_ece"] <= 1.0
    assert sum(map(sum, seed["confusion"])) == seed["sentiment_examples"] > 0
    assert (seed_model_dir / "eval-test" / "confusion.png").exists()


@pytest.fixture
def cli_model(
    settings: Settings, models_dir: Path, seed_model_dir: Path
) -> Iterator[dict[str, str]]:
    """Env for a CLI run that serves the seed model under a name of its own."""
    name = f"selftest_cli_{uuid.uuid4().hex[:8]}"
    yield {"TONEWATCH_MODELS_DIR": str(models_dir), "TONEWATCH_TRITON_MODEL_NAME": name}
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        client.unload_model(name)
    finally:
        client.close()
    shutil.rmtree(settings.model_repository / name, ignore_errors=True)


def test_classify_scores_good_lines_and_reports_bad_ones(
    tmp_path: Path, cli_model: dict[str, str]
) -> None:
    source = tmp_path / "in.jsonl"
    good = [
        {"id": f"m{i}", "text": f"Shares of ACME fell {i}% after the recall"} for i in range(40)
    ]
    lines = [json.dumps(g) for g in good[:20]]
    lines += ['{"id": "no-text"}', "not json", '{"id": "empty", "text": "   "}']
    lines += [json.dumps(g) for g in good[20:]]
    source.write_bytes(("\n".join(lines) + "\n").encode() + b'{"id": "bytes", "text": "\xff"}\n')
    output = tmp_path / "out.jsonl"

    result = run_cli("classify", "-i", str(source), "-o", str(output), env=cli_model)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["scored"], summary["errors"]) == (40, 4)
    for line_number in (21, 22, 23, 44):
        assert f"line {line_number}:" in result.stderr
    scored = [json.loads(line) for line in output.read_text().splitlines()]
    assert [s["id"] for s in scored] == [g["id"] for g in good]
    first = scored[0]
    assert set(first) == {"id", "sentiment", "scores", "risks", "model_version"}
    assert first["sentiment"] == max(first["scores"], key=first["scores"].get)
    assert abs(sum(first["scores"].values()) - 1) < 1e-4
    assert len(first["risks"]) == 7
    assert first["model_version"] == "1"  # exported on demand as this name's first version


def test_bench_inference_prints_the_three_modes_and_their_ratios(cli_model: dict[str, str]) -> None:
    result = run_cli(
        "bench", "inference", "--messages", "60", "--concurrency", "4", "--json", env=cli_model
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for mode in ("naive", "batched", "onnx_in_process", "onnx_fp32_in_process", "triton"):
        figures = report[mode]
        assert figures["messages"] == 60
        assert figures["messages_per_s"] > 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
        assert figures["peak_rss_mb"] > 0
    assert report["speedup_vs_naive"] == round(
        report["triton"]["messages_per_s"] / report["naive"]["messages_per_s"], 2
    )
    assert report["speedup_vs_onnx_in_process"] == round(
        report["triton"]["messages_per_s"] / report["onnx_in_process"]["messages_per_s"], 2
    )
    assert report["model"]["triton_version"] == "1"
    assert report["model"]["quantisation"]["scheme"] == "static int8 (QDQ)"
