"""`tonewatch model …`: train, evaluate and export the sentiment + risk model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tonewatch.commands.progress import PhaseProgress, progress_bar
from tonewatch.config import Settings

if TYPE_CHECKING:
    from retrain.datasets.base import Dataset

app = typer.Typer(help="Train, evaluate and export the sentiment + risk model.")
console = Console()

DatasetsOption = Annotated[
    str | None,
    typer.Option(help="Comma-separated dataset names (default: all available, seed included)."),
]
ModelOption = Annotated[str, typer.Option("--model", help="`latest`, a version id or a path.")]


def _dataset_names(settings: Settings, names: str | None, training: bool) -> list[str]:
    """The names asked for, or every available dataset (for training: bar subsets)."""
    from retrain import datasets

    if names:
        return [name.strip() for name in names.split(",") if name.strip()]
    if training:
        return datasets.trainable(settings.data_dir)
    return datasets.available(settings.data_dir)


def _load_datasets(settings: Settings, names: list[str], quiet: bool = False) -> list[Dataset]:
    from retrain import datasets

    loaded = []
    for name in names:
        dataset = datasets.load(name, settings.data_dir)
        loaded.append(dataset)
        if not quiet:
            skipped = dict(dataset.report.skipped.most_common(3))
            console.print(
                f"  {dataset.name}: {dataset.report.loaded} examples"
                + (f", skipped {dataset.report.skipped_total} {skipped}" if skipped else "")
            )
    return loaded


def _metrics_table(metrics: dict) -> Table:  # type: ignore[type-arg]
    table = Table(title="test split, per dataset")
    for column in ("dataset", "n", "sent. acc", "sent. macro-F1", "ECE", "risk macro-F1"):
        table.add_column(column, justify="right" if column != "dataset" else "left")

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for m in metrics.values():
        table.add_row(
            m.dataset, str(m.examples), fmt(m.sentiment_accuracy), fmt(m.sentiment_macro_f1),
            fmt(m.sentiment_ece), fmt(m.risk_macro_f1),
        )  # fmt: skip
    return table


@app.command("train")
def train_command(
    datasets: DatasetsOption = None,
    epochs: Annotated[int | None, typer.Option(help="Most epochs (early stopping).")] = None,
    trainable_layers: Annotated[
        int | None, typer.Option(help="Top encoder layers to fine-tune (-1: all).")
    ] = None,
    per_dataset_cap: Annotated[
        int | None, typer.Option(help="Training examples drawn per dataset per epoch.")
    ] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per text.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    time_budget_s: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
) -> None:
    """Train a new version on the datasets' train splits; evaluate it on their test splits."""
    from retrain.datasets import EVALUATION_ONLY
    from retrain.evaluate import evaluate, predictor_for
    from retrain.train import TrainConfig, split_examples, train
    from retrain.versions import new_version_id, save_version

    settings = Settings()
    console.print("[bold]loading datasets[/]")
    loaded = _load_datasets(settings, _dataset_names(settings, datasets, training=True))
    # Subsets held out from training are still evaluated when training on everything.
    evaluation_only = [] if datasets else sorted(EVALUATION_ONLY)
    everything = _dataset_names(settings, None, training=False)
    held_out = _load_datasets(settings, [n for n in evaluation_only if n in everything])
    # Unset options keep TrainConfig's defaults: they are defined there, once.
    overrides: dict[str, Any] = {
        "epochs": epochs, "trainable_layers": trainable_layers, "max_length": max_length,
        "per_dataset_cap": per_dataset_cap, "seed": seed, "time_budget_s": time_budget_s,
    }  # fmt: skip
    config = dataclasses.replace(
        TrainConfig(encoder=settings.encoder),
        **{k: v for k, v in overrides.items() if v is not None},
    )
    with progress_bar(console) as progress:
        result = train(config, loaded, progress=PhaseProgress(progress))
        task = progress.add_task("test split", total=None)
        test = split_examples([*loaded, *held_out], "test")
        metrics = evaluate(test, predictor_for(result.model))
        progress.update(task, total=1, completed=1)
    folder = settings.trained_models / new_version_id(config.seed)
    save_version(folder, result, metrics, {d.name: d.licence for d in loaded})
    console.print(_metrics_table(metrics))
    console.print(f"[green]✓[/] model saved in {folder} ({result.stop_reason})")
    console.print(f"  card: {folder / 'MODEL_CARD.md'}; plots: confusion.png, training_curve.png")


@app.command("eval")
def eval_command(
    model: ModelOption = "latest",
    data: Annotated[str | None, typer.Option(help="Datasets (default: all available).")] = None,
    split: Annotated[str, typer.Option(help="train, dev or test.")] = "test",
    out: Annotated[Path | None, typer.Option(help="Where to write metrics + plots.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Evaluate a trained version per dataset; writes metrics.json and confusion.png."""
    from inference.model import load_model
    from retrain import versions
    from retrain.evaluate import evaluate, predictor_for
    from retrain.train import split_examples

    settings = Settings()
    folder = versions.resolve(settings.trained_models, model)
    loaded = _load_datasets(settings, _dataset_names(settings, data, False), quiet=as_json)
    metrics = evaluate(split_examples(loaded, split), predictor_for(load_model(folder)))
    target = out or folder / f"eval-{split}"
    target.mkdir(parents=True, exist_ok=True)
    versions.write_metrics(target, metrics)
    if as_json:
        report = {"model": folder.name, "split": split, "datasets": metrics}
        typer.echo(json.dumps(report, default=lambda m: m.as_dict(), indent=2))
    else:
        console.print(_metrics_table(metrics))
        console.print(f"metrics and confusion.png in {target}")


@app.command("export")
def export_command(
    model: ModelOption = "latest",
    int8: Annotated[
        bool, typer.Option(help="Dynamic int8 quantisation of the ONNX weights.")
    ] = True,
    load: Annotated[bool, typer.Option(help="Load it into the running Triton.")] = True,
) -> None:
    """Export a trained version into the Triton repository as its next version, and load it."""
    from inference.model import load_model
    from inference.repository import ServingConfig, export
    from retrain import versions

    settings = Settings()
    folder = versions.resolve(settings.trained_models, model)
    with console.status(f"exporting {folder.name} to ONNX…"):
        version = export(
            load_model(folder), settings.model_repository.resolve(), settings.triton_model_name,
            ServingConfig(quantize_int8=int8), source=folder.name,
        )  # fmt: skip
    console.print(f"[green]✓[/] {settings.triton_model_name} version {version} written")
    if load:
        served = load_into_triton(settings)
        console.print(f"[green]✓[/] Triton serves {settings.triton_model_name} v{served}")


def load_into_triton(settings: Settings) -> str:
    """(Re)load the served model from the repository; returns the version Triton reports."""
    import tritonclient.grpc as grpcclient

    from tonewatch import services

    services.up(settings, ["triton"])
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        client.load_model(settings.triton_model_name)
        ready = client.get_model_repository_index().models
        loaded = [
            m.version for m in ready if m.name == settings.triton_model_name and m.state == "READY"
        ]
        return max(loaded, key=int) if loaded else "?"
    finally:
        client.close()


def ensure_model_served(settings: Settings) -> str:
    """Make sure Triton serves the model: load the repository's latest version, exporting the
    latest trained one first if the repository is empty. Returns the served version."""
    from inference.repository import versions

    model_dir = settings.model_repository / settings.triton_model_name
    if not versions(model_dir):
        from inference.model import load_model
        from inference.repository import export
        from retrain import versions as trained

        folder = trained.latest(settings.trained_models)  # a clear error if there is none
        export(
            load_model(folder), settings.model_repository.resolve(), settings.triton_model_name,
            source=folder.name,
        )  # fmt: skip
    return load_into_triton(settings)
