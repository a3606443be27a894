"""`tonewatch model …`: train, evaluate and export the sentiment + risk model; list the
registry and roll back the served version."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from tonewatch.commands.progress import PhaseProgress, progress_bar
from tonewatch.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from retrain.datasets.base import Dataset
    from retrain.train import EpochStats
    from storage.model_registry import ModelVersion

app = typer.Typer(help="Train, evaluate and export the sentiment + risk model.")
console = Console()
err_console = Console(stderr=True)

DatasetsOption = Annotated[
    str | None,
    typer.Option(help="Comma-separated dataset names (default: all available, seed included)."),
]
ModelOption = Annotated[str, typer.Option("--model", help="`latest`, a version id or a path.")]
# The names of retrain.train.RECIPES, spelled here so the CLI starts without importing torch.
Recipe = Literal["full", "quick"]


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


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _metrics_table(metrics: dict) -> Table:  # type: ignore[type-arg]
    table = Table(title="test split, per dataset")
    for column in ("dataset", "n", "sent. acc", "sent. macro-F1", "ECE", "risk macro-F1"):
        table.add_column(column, justify="right" if column != "dataset" else "left")

    for m in metrics.values():
        table.add_row(
            m.dataset, str(m.examples), _fmt(m.sentiment_accuracy), _fmt(m.sentiment_macro_f1),
            _fmt(m.sentiment_ece), _fmt(m.risk_macro_f1),
        )  # fmt: skip
    return table


@app.command("train")
def train_command(
    recipe: Annotated[
        Recipe,
        typer.Option(help="quick: minutes on 2 cores; full: docs/model.md's figures (~1.5 h)."),
    ] = "quick",
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
    from retrain.train import RECIPES, split_examples, train
    from retrain.versions import new_version_id, save_version

    settings = Settings()
    console.print("[bold]loading datasets[/]")
    loaded = _load_datasets(settings, _dataset_names(settings, datasets, training=True))
    # Subsets held out from training are still evaluated when training on everything.
    evaluation_only = [] if datasets else sorted(EVALUATION_ONLY)
    everything = _dataset_names(settings, None, training=False)
    held_out = _load_datasets(settings, [n for n in evaluation_only if n in everything])
    # Unset options keep the recipe's values: they are defined there, once.
    overrides: dict[str, Any] = {
        "epochs": epochs, "trainable_layers": trainable_layers, "max_length": max_length,
        "per_dataset_cap": per_dataset_cap, "seed": seed, "time_budget_s": time_budget_s,
    }  # fmt: skip
    config = dataclasses.replace(
        RECIPES[recipe],
        encoder=settings.encoder,
        **{k: v for k, v in overrides.items() if v is not None},
    )
    with progress_bar(console) as progress:
        result = train(
            config, loaded, progress=PhaseProgress(progress),
            on_epoch=lambda stats: progress.console.print(
                _epoch_line(stats, config.epochs), soft_wrap=True
            ),
        )  # fmt: skip
        task = progress.add_task("test split", total=None)
        test = split_examples([*loaded, *held_out], "test")
        metrics = evaluate(test, predictor_for(result.model))
        progress.update(task, total=1, completed=1)
    folder = settings.trained_models / new_version_id(config.seed)
    save_version(folder, result, metrics, {d.name: d.licence for d in loaded})
    console.print(_metrics_table(metrics))
    console.print(f"[green]✓[/] model saved in {folder} ({result.stop_reason})")
    console.print(f"  card: {folder / 'MODEL_CARD.md'}; plots: confusion.png, training_curve.png")


def _epoch_line(stats: EpochStats, epochs: int) -> str:
    return (
        f"epoch {stats.epoch}/{epochs}: train loss {stats.train_loss:.4f}, dev loss "
        f"{stats.dev_loss:.4f}, dev macro-F1 sentiment {_fmt(stats.dev_sentiment_macro_f1)} "
        f"/ risk {_fmt(stats.dev_risk_macro_f1)} ({stats.seconds:.0f} s)"
    )


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
        bool, typer.Option(help="Static int8 quantisation (calibrated on the training mix).")
    ] = True,
    load: Annotated[
        bool, typer.Option(help="Serve it now: it becomes the champion (else a candidate).")
    ] = True,
) -> None:
    """Export a trained version into the Triton repository as its next version, record it
    in the registry, and (with --load) switch serving to it without downtime."""
    from inference.model import load_model
    from inference.repository import ServingConfig, export
    from retrain import versions
    from retrain.calibration import calibration_for
    from storage.db import connected, migrate
    from storage.exceptions import DatabaseUnavailable

    settings = Settings()
    name = settings.triton_model_name
    folder = versions.resolve(settings.trained_models, model)

    async def export_and_record() -> None:
        from storage import model_registry

        async with connected(settings) as engine:
            # Adopt what served before, first: the new version must not pass for it.
            previous = await _champion(settings, engine)
            with console.status(f"exporting {folder.name} to ONNX…"):
                calibration = calibration_for(folder, settings.data_dir) if int8 else []
                version = export(
                    load_model(folder), settings.model_repository.resolve(), name,
                    ServingConfig(quantize_int8=int8), source=folder.name,
                    calibration=calibration,
                )  # fmt: skip
            console.print(f"[green]✓[/] {name} version {version} written (not served yet)")
            await model_registry.record_candidate(
                engine, name, folder.name, key_metrics(settings, folder.name), version=version
            )
            if not load:
                return
            await asyncio.to_thread(_serve, settings, version)
            await model_registry.promote(engine, name, version, reason="tonewatch model export")
            console.print(f"[green]✓[/] Triton serves {name} v{version} (the champion)")
            await _announce(
                settings, "promoted", version, previous, folder.name, "tonewatch model export"
            )

    try:
        migrate(settings.database_url)
        asyncio.run(export_and_record())
    except DatabaseUnavailable as exc:
        _fail(str(exc))


@app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the history as JSON.")] = False,
    limit: Annotated[int, typer.Option(help="Most versions shown, newest first.")] = 50,
) -> None:
    """The model registry: every version and rejected challenger, with its status and key
    metrics; the version Triton serves is marked."""
    from inference.serving import ServingError, served_version
    from storage import model_registry
    from storage.db import connected, migrate
    from storage.exceptions import DatabaseUnavailable

    settings = Settings()
    name = settings.triton_model_name

    async def history() -> list[model_registry.ModelVersion]:
        async with connected(settings) as engine:
            await _champion(settings, engine)
            return await model_registry.history(engine, name, limit)

    try:
        migrate(settings.database_url)
        rows = asyncio.run(history())
    except DatabaseUnavailable as exc:
        _fail(str(exc))
    try:
        serving: int | None = served_version(settings.triton_grpc_url, name)
        triton_up = True
    except ServingError:
        serving, triton_up = None, False
    if as_json:
        listed = [{**row.as_dict(), "serving": row.version == serving} for row in rows]
        report = {"model_name": name, "serving_version": serving, "versions": listed}
        typer.echo(json.dumps(report, indent=2))
        return
    console.print(_history_table(name, rows, serving))
    if not triton_up:
        console.print("[yellow]Triton did not answer: the serving version is unknown[/]")
    elif serving is None:
        console.print(f"[yellow]Triton serves no version of {name}[/]")


@app.command("rollback")
def rollback_command(
    to: Annotated[
        int | None, typer.Option("--to", help="Serve this version (default: the previous one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Serve the previous champion again (or version N), without downtime. The version
    rolled back from is retired ("rolled back"); a `model-events` record announces it."""
    from storage.db import connected, migrate
    from storage.exceptions import DatabaseUnavailable

    settings = Settings()
    started = time.monotonic()

    async def rollback() -> dict[str, Any]:
        async with connected(settings) as engine:
            return await _rollback(settings, engine, to)

    try:
        migrate(settings.database_url)
        outcome = asyncio.run(rollback())
    except DatabaseUnavailable as exc:
        _fail(str(exc))
    outcome["total_seconds"] = round(time.monotonic() - started, 2)
    if as_json:
        typer.echo(json.dumps(outcome))
        return
    console.print(
        f"[green]✓[/] {outcome['model_name']} serves version {outcome['version']} again "
        f"(was {outcome['previous_version']}): swapped in {outcome['seconds']}s, "
        f"{outcome['total_seconds']}s in all"
    )
    if not outcome["event_published"]:
        console.print("[yellow]the model-events record was not published (see the log)[/]")


async def _rollback(settings: Settings, engine: AsyncEngine, to: int | None) -> dict[str, Any]:
    from inference.repository import version_source, versions
    from storage import model_registry

    name = settings.triton_model_name
    model_dir = settings.model_repository.resolve() / name
    current = await _champion(settings, engine)
    if to is None:
        target = await model_registry.previous_champion(engine, name)
        if target is None:
            _fail(f"{name} has no previous champion to roll back to; name one with --to N")
    else:
        target = await model_registry.get(engine, name, to)
        if target is None and to in versions(model_dir):  # exported outside the registry
            trained_id = version_source(model_dir / str(to)) or "unknown"
            target = await model_registry.record_candidate(
                engine, name, trained_id, key_metrics(settings, trained_id), version=to
            )
        if target is None:
            _fail(f"{name} has no version {to} (see `tonewatch model list`)")
    assert target.version is not None  # previous_champion and get only return versions
    previous = current.version if current is not None else None
    if target.version == previous:
        _fail(f"{name} version {target.version} is already the champion")
    swap_started = time.monotonic()
    await asyncio.to_thread(_serve, settings, target.version)
    seconds = round(time.monotonic() - swap_started, 2)
    reason = f"rolled back from version {previous}"
    await model_registry.promote(
        engine, name, target.version, retire_reason=model_registry.ROLLED_BACK, reason=reason
    )
    published = await _announce(
        settings, "rolled_back", target.version, current, target.trained_id, reason
    )
    return {
        "model_name": name, "version": target.version, "previous_version": previous,
        "trained_id": target.trained_id, "seconds": seconds, "event_published": published,
    }  # fmt: skip


def _serve(settings: Settings, version: int) -> None:
    """Switch Triton to `version` (see inference.serving); exit 1 if it stays on the old."""
    from inference.serving import ServingError, serve_version
    from tonewatch import services

    services.up(settings, ["triton"])
    try:
        serve_version(settings, settings.triton_model_name, version)
    except ServingError as exc:
        _fail(f"not switched: {exc}")


async def _champion(settings: Settings, engine: AsyncEngine) -> ModelVersion | None:
    """The registry's champion. A model served before the registry existed (its pinned,
    else its served version) is adopted as the champion on first use."""
    from inference.repository import pinned_version, version_source
    from inference.serving import ServingError, served_version
    from storage import model_registry

    name = settings.triton_model_name
    found = await model_registry.champion(engine, name)
    if found is not None:
        return found
    model_dir = settings.model_repository.resolve() / name
    version = pinned_version(model_dir)
    if version is None:
        try:
            version = served_version(settings.triton_grpc_url, name)
        except ServingError:
            return None
    if version is None or not (model_dir / str(version)).is_dir():
        return None
    trained_id = version_source(model_dir / str(version)) or "unknown"
    metrics = key_metrics(settings, trained_id)
    return await model_registry.adopt_existing(engine, name, version, trained_id, metrics)


KEY_METRICS = ("examples", "sentiment_macro_f1", "sentiment_ece", "risk_macro_f1")


def key_metrics(settings: Settings, trained_id: str) -> dict[str, dict[str, Any]]:
    """The registry's summary of a trained version's metrics.json (empty if it has none)."""
    path = settings.trained_models / trained_id / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {
        dataset: {key: figures.get(key) for key in KEY_METRICS}
        for dataset, figures in metrics.items()
        if isinstance(figures, dict)
    }


async def _announce(
    settings: Settings,
    event: Literal["promoted", "rolled_back"],
    version: int,
    previous: ModelVersion | None,
    trained_id: str,
    reason: str,
) -> bool:
    """Publish the model event; False (with a warning) when Kafka did not take it: the
    registry is the record, the event a notification."""
    from aiokafka.errors import KafkaError

    from tonewatch.contracts import ModelEvent
    from tonewatch.model_events import publish_model_event

    record = ModelEvent(
        event=event, model_name=settings.triton_model_name, version=version,
        previous_version=previous.version if previous is not None else None,
        trained_id=trained_id, reason=reason, at=datetime.now(UTC),
    )  # fmt: skip
    try:
        await publish_model_event(settings, record)
    except KafkaError as exc:
        err_console.print(f"model-events not published ({exc!r}): {record.model_dump_json()}")
        return False
    return True


def _mean(rows: dict[str, dict[str, Any]], key: str) -> float | None:
    values = [m[key] for m in rows.values() if isinstance(m.get(key), int | float)]
    return sum(values) / len(values) if values else None


def _history_table(name: str, rows: list[ModelVersion], serving: int | None) -> Table:
    table = Table(title=f"{name}: model versions, newest first")
    columns = (
        "version", "trained id", "status", "mean sent. F1", "mean ECE", "feedback F1",
        "reason", "created", "updated",
    )  # fmt: skip
    for column in columns:
        table.add_column(column)

    for row in rows:
        gold = {k: v for k, v in row.metrics.items() if k != "feedback"}
        feedback = row.metrics.get("feedback", {})
        marker = (
            " [bold green]● serving[/]"
            if row.version is not None and row.version == serving
            else ""
        )
        table.add_row(
            f"{row.version if row.version is not None else '-'}{marker}", row.trained_id,
            row.status, _fmt(_mean(gold, "sentiment_macro_f1")), _fmt(_mean(gold, "sentiment_ece")),
            _fmt(feedback.get("sentiment_macro_f1")), row.reason or "",
            f"{row.created_at:%Y-%m-%d %H:%M}", f"{row.updated_at:%Y-%m-%d %H:%M}",
        )  # fmt: skip
    return table


def _fail(message: str) -> NoReturn:
    err_console.print(f"✗ {message}", markup=False, highlight=False)
    raise typer.Exit(1)


def load_into_triton(settings: Settings) -> str:
    """(Re)load the served model from the repository; returns the version Triton serves
    (the one its config pins; see inference.repository)."""
    import tritonclient.grpc as grpcclient

    from inference.serving import LOAD_TIMEOUT_S, served_version
    from tonewatch import services

    services.up(settings, ["triton"])
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        client.load_model(settings.triton_model_name, client_timeout=LOAD_TIMEOUT_S)
    finally:
        client.close()
    served = served_version(settings.triton_grpc_url, settings.triton_model_name)
    return "?" if served is None else str(served)


def ensure_model_served(settings: Settings) -> str:
    """Make sure Triton serves the model: load the repository's pinned version, exporting
    the latest trained one first if the repository is empty. Returns the served version."""
    from inference.repository import versions

    model_dir = settings.model_repository / settings.triton_model_name
    if not versions(model_dir):
        from inference.model import load_model
        from inference.repository import export
        from retrain import versions as trained
        from retrain.calibration import calibration_for

        folder = trained.latest(settings.trained_models)  # a clear error if there is none
        export(
            load_model(folder), settings.model_repository.resolve(), settings.triton_model_name,
            source=folder.name, calibration=calibration_for(folder, settings.data_dir),
        )  # fmt: skip
    return load_into_triton(settings)
