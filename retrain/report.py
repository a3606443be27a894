"""What a training run leaves for people: plots and a model card."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt

from retrain.evaluate import DatasetMetrics
from retrain.gate import Decision
from retrain.train import EpochStats, TrainResult
from tonewatch.contracts import SENTIMENT_LABELS


def plot_confusion(metrics: dict[str, DatasetMetrics], path: Path) -> None:
    """One sentiment confusion matrix per dataset that has sentiment labels, row-normalised."""
    shown = [m for m in metrics.values() if m.confusion]
    if not shown:
        return
    cols = min(3, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, m in zip(axes.flat, shown, strict=False):
        assert m.confusion is not None
        counts = [[float(c) for c in row] for row in m.confusion]
        normalised = [[c / max(1.0, sum(row)) for c in row] for row in counts]
        ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        for i, row in enumerate(counts):
            for j, count in enumerate(row):
                colour = "white" if normalised[i][j] > 0.6 else "black"
                ax.text(j, i, f"{int(count)}", ha="center", va="center", color=colour)
        ax.set_xticks(range(3), [label[:3] for label in SENTIMENT_LABELS])
        ax.set_yticks(range(3), [label[:3] for label in SENTIMENT_LABELS])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{m.dataset}\nmacro-F1 {m.sentiment_macro_f1:.3f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training_curve(history: Sequence[EpochStats], path: Path, best_epoch: int = 0) -> None:
    epochs = [h.epoch for h in history]
    fig, (loss_ax, f1_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    loss_ax.plot(epochs, [h.train_loss for h in history], "o-", label="train")
    loss_ax.plot(epochs, [h.dev_loss for h in history], "o-", label="dev")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.legend()
    loss_ax.set_title("multi-task loss")
    for label, values in (
        ("sentiment", [h.dev_sentiment_macro_f1 for h in history]),
        ("risk", [h.dev_risk_macro_f1 for h in history]),
    ):
        f1_ax.plot(epochs, [float("nan") if v is None else v for v in values], "o-", label=label)
    f1_ax.set_xlabel("epoch")
    f1_ax.set_ylabel("dev macro-F1")
    f1_ax.set_ylim(0, 1)
    f1_ax.legend()
    f1_ax.set_title("dev macro-F1 (kept: best mean)")
    for ax in (loss_ax, f1_ax):
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
    if best_epoch:
        loss_ax.annotate("kept", (best_epoch, loss_ax.get_ylim()[1]), ha="center", va="top")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def metrics_table(metrics: dict[str, DatasetMetrics]) -> str:
    lines = [
        "| dataset | test examples | sentiment acc | sentiment macro-F1 | ECE | risk macro-F1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in metrics.values():
        lines.append(
            f"| {m.dataset} | {m.examples} | {_fmt(m.sentiment_accuracy)} | "
            f"{_fmt(m.sentiment_macro_f1)} | {_fmt(m.sentiment_ece)} | {_fmt(m.risk_macro_f1)} |"
        )
    return "\n".join(lines)


def risk_table(metrics: dict[str, DatasetMetrics]) -> str:
    lines = [
        "| dataset | risk | precision | recall | F1 | positives |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for m in metrics.values():
        for risk, s in m.risk.items():
            lines.append(
                f"| {m.dataset} | {risk} | {s['precision']:.3f} | {s['recall']:.3f} | "
                f"{s['f1']:.3f} | {int(s['support'])} |"
            )
    return "\n".join(lines)


def model_card(
    version: str,
    result: TrainResult,
    metrics: dict[str, DatasetMetrics],
    licences: dict[str, str],
) -> str:
    c = result.config
    data = "\n".join(
        f"| {name} | {count} | {licences.get(name, '?')} |"
        for name, count in sorted(result.train_counts.items())
    )
    history = "\n".join(
        f"| {h.epoch} | {h.train_loss:.4f} | {h.dev_loss:.4f} | {_fmt(h.dev_sentiment_macro_f1)} "
        f"| {_fmt(h.dev_risk_macro_f1)} | {h.seconds:.0f} |"
        for h in result.history
    )
    layers = "all" if c.trainable_layers < 0 else f"the top {c.trainable_layers}"
    precision = "bfloat16 autocast" if result.bf16 else "float32"
    caps = ", ".join(f"{k} {v}" for k, v in sorted(c.dataset_caps.items())) or "none"
    repeats = ", ".join(f"{k} x{v}" for k, v in sorted(c.dataset_repeats.items())) or "none"
    return f"""# tonewatch model {version}

Sentiment (negative / neutral / positive) and multi-label risk (fraud, legal_regulatory,
financial_distress, service_outage, product_safety, churn, toxicity) classifier.

## Model
- Encoder: `{c.encoder}` (mean pooling), {layers} transformer layers
  fine-tuned, two linear heads (softmax sentiment, sigmoid risk). Max length {c.max_length}.
- Training: {c.epochs} epochs max, batch {c.batch_size}, lr {c.learning_rate} (encoder) /
  {c.head_learning_rate} (heads) with {c.warmup_share:.0%} warm-up and linear decay,
  {precision}, at most {c.per_dataset_cap} examples per dataset per epoch
  (other caps: {caps}; drawn whole several times: {repeats}),
  seed {c.seed}. Best dev epoch: {result.best_epoch} ({result.stop_reason}).

## Data (train split sizes; splits are frozen by a hash of each text: 80/10/10)
| dataset | train examples | licence |
| --- | ---: | --- |
{data}

Datasets under a non-commercial licence (NC) make this model fit for evaluation and
internal measurement only, not for commercial use.

## Training history
| epoch | train loss | dev loss | dev sentiment macro-F1 | dev risk macro-F1 | seconds |
| ---: | ---: | ---: | ---: | ---: | ---: |
{history}

## Test metrics per dataset
{metrics_table(metrics)}

### Risk, per label
{risk_table(metrics)}

![confusion](confusion.png) ![training](training_curve.png)

## Limits
- Risk labels come from proxies (BANKING77 intents, airline complaint reasons, CFPB issues,
  hate/offensive tweets) and the project's own seed sentences; there is no public
  human-labelled set for service outage or product safety, so their figures mostly measure
  agreement with those proxies.
- English only. Text beyond {c.max_length} tokens is truncated.
- Sentiment of long reviews is judged from their first {c.max_length} tokens.
"""


def plot_comparison(
    champion: dict[str, DatasetMetrics], challenger: dict[str, DatasetMetrics], path: Path
) -> None:
    """Sentiment and risk macro-F1 per gold set (and the held-out feedback), side by side."""
    names = sorted(set(champion) & set(challenger))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 1.8), squeeze=False)
    for ax, metric in zip(axes[0], ("sentiment_macro_f1", "risk_macro_f1"), strict=True):
        for offset, (label, side) in enumerate(
            (("champion", champion), ("challenger", challenger))
        ):
            values = [getattr(side[n], metric) or 0.0 for n in names]
            ax.barh([i + 0.4 * offset for i in range(len(names))], values, height=0.4, label=label)
        ax.set_yticks([i + 0.2 for i in range(len(names))], names)
        ax.set_xlim(0, 1)
        ax.set_title(metric.replace("_", " "))
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_round_report(
    folder: Path,
    *,
    run_id: int,
    champion: str,
    challenger: str,
    champion_metrics: dict[str, DatasetMetrics],
    challenger_metrics: dict[str, DatasetMetrics],
    decision: Decision,
    summary: dict[str, object],
    history: Sequence[EpochStats],
    fp32_metrics: tuple[dict[str, DatasetMetrics], dict[str, DatasetMetrics]] | None = None,
) -> None:
    """A retrain round's report: report.json, REPORT.md and three PNGs (comparison,
    confusion matrices of the challenger, training curve). The metrics are the served
    models' (what the gate judged); `fp32_metrics` (champion, challenger), where given, are
    shown beside them in brackets."""
    folder.mkdir(parents=True, exist_ok=True)
    plot_comparison(champion_metrics, challenger_metrics, folder / "comparison.png")
    plot_confusion(challenger_metrics, folder / "confusion.png")
    if history:
        plot_training_curve(history, folder / "training_curve.png")
    verdict = "promoted" if decision.promote else "rejected"
    payload = {
        "run_id": run_id, "champion": champion, "challenger": challenger,
        "decision": verdict, "reasons": decision.reasons, "figures": decision.figures,
        "summary": summary,
        "champion_metrics": {n: m.as_dict() for n, m in champion_metrics.items()},
        "challenger_metrics": {n: m.as_dict() for n, m in challenger_metrics.items()},
    }  # fmt: skip
    if fp32_metrics is not None:
        payload["fp32_metrics"] = {
            model: {n: m.as_dict() for n, m in figures.items()}
            for model, figures in zip(("champion", "challenger"), fp32_metrics, strict=True)
        }
    (folder / "report.json").write_text(json.dumps(payload, indent=2, default=str))

    def cell(served: DatasetMetrics, fp32: DatasetMetrics | None, metric: str) -> str:
        shown = _fmt(getattr(served, metric))
        return shown if fp32 is None else f"{shown} ({_fmt(getattr(fp32, metric))})"

    def pair(name: str, metric: str) -> str:
        before, after = champion_metrics[name], challenger_metrics[name]
        fp32 = [f.get(name) for f in fp32_metrics] if fp32_metrics else [None, None]
        return f"{cell(before, fp32[0], metric)} | {cell(after, fp32[1], metric)}"

    rows = "\n".join(
        f"| {n} | {pair(n, 'sentiment_macro_f1')} | {pair(n, 'sentiment_ece')} | "
        f"{pair(n, 'risk_macro_f1')} |"
        for n in sorted(set(champion_metrics) & set(challenger_metrics))
    )
    reasons = "\n".join(f"- {r}" for r in decision.reasons) or "- (none)"
    (folder / "REPORT.md").write_text(
        f"""# Retrain round {run_id}: {verdict}

Champion `{champion}` against challenger `{challenger}`.

## Decision: {verdict}
{reasons}

## Metrics (champion / challenger{", served int8 (fp32)" if fp32_metrics else ""})
| set | sentiment F1 | | ECE | | risk F1 | |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

![comparison](comparison.png) ![confusion](confusion.png) ![training curve](training_curve.png)

## Round
```json
{json.dumps(summary, indent=2, default=str)}
```
"""
    )
