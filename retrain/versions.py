"""Trained model versions on disk: one folder each, with weights, metrics, plots and card."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from retrain.evaluate import DatasetMetrics
from retrain.report import model_card, plot_confusion, plot_training_curve
from retrain.train import TrainResult


def new_version_id(seed: int) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-s{seed}"


def latest(models_dir: Path) -> Path:
    """The most recently trained version (ids sort by time)."""
    candidates = sorted(p for p in models_dir.glob("*") if (p / "spec.json").exists())
    if not candidates:
        raise FileNotFoundError(f"no trained model under {models_dir}; run: tonewatch model train")
    return candidates[-1]


def resolve(models_dir: Path, name: str) -> Path:
    """`latest`, a version id under models_dir, or a path."""
    if name == "latest":
        return latest(models_dir)
    for candidate in (models_dir / name, Path(name)):
        if (candidate / "spec.json").exists():
            return candidate
    raise FileNotFoundError(f"no trained model {name!r} (looked in {models_dir} and ./{name})")


def write_metrics(folder: Path, metrics: dict[str, DatasetMetrics]) -> None:
    (folder / "metrics.json").write_text(
        json.dumps({name: m.as_dict() for name, m in metrics.items()}, indent=2)
    )
    plot_confusion(metrics, folder / "confusion.png")


def save_version(
    folder: Path,
    result: TrainResult,
    metrics: dict[str, DatasetMetrics],
    licences: dict[str, str],
) -> None:
    result.model.save(folder)
    (folder / "training.json").write_text(
        json.dumps(
            {
                "config": asdict(result.config),
                "history": [asdict(h) for h in result.history],
                "best_epoch": result.best_epoch,
                "stop_reason": result.stop_reason,
                "train_counts": result.train_counts,
                "bf16": result.bf16,
            },
            indent=2,
        )
    )
    write_metrics(folder, metrics)
    plot_training_curve(result.history, folder / "training_curve.png", result.best_epoch)
    (folder / "MODEL_CARD.md").write_text(model_card(folder.name, result, metrics, licences))
