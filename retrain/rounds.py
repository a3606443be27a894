"""A retrain round: labels in, a better model served, or nothing (with the reasons).

`run_round` holds a Postgres advisory lock on a connection of its own for the whole round,
so two workers never train at once, and a crashed worker's lock dies with its connection.
Then:
1. resolve the labels of the label store (weighted votes; excluded, flagged and capped
   labellers; a held-out slice of the newest), never training on a gold-set text;
2. fine-tune a challenger from the champion on the base data plus the accepted labels
   (deterministic seed, time budget);
3. evaluate challenger and champion on the frozen gold sets and the held-out feedback,
   and let the gate decide;
4. write a report (JSON, Markdown, PNGs) next to the challenger's saved version;
5. promoted: smoke-test the challenger under a throwaway model name, export it as the next
   version (written aside and renamed into place), switch serving to it, record it, and
   announce it; rejected: record it with the reasons and announce that.
Nothing is deleted either way. The Kafka side (feedback in, model-events out) is the
worker's: tonewatch/retrain_worker.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from retrain import gate, gold, labels
from retrain.datasets import load_all, trainable
from retrain.datasets.base import Dataset, LoadReport
from retrain.evaluate import DatasetMetrics, evaluate, evaluate_examples, predictor_for
from retrain.report import write_round_report
from retrain.train import TrainConfig, train
from retrain.versions import new_version_id, resolve, save_version
from storage import model_registry, training_labels
from storage.db import connection_errors
from tonewatch.config import Settings
from tonewatch.contracts import ModelEvent

log = logging.getLogger(__name__)

# One constant for every retrain worker: the round lock (pg_try_advisory_lock).
ROUND_LOCK_KEY: Final = 0x7265747261696E  # "retrain"
FEEDBACK_DATASET: Final = "feedback"

Announce = Callable[[ModelEvent], Awaitable[None]]


@dataclass
class RoundResult:
    run_id: int
    status: str  # promoted, rejected, failed or skipped
    reasons: list[str] = field(default_factory=list)
    version: int | None = None
    trained_id: str | None = None
    report_dir: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)


class RoundBusy(RuntimeError):
    """Another worker holds the round lock."""


@contextlib.asynccontextmanager
async def round_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """The cluster-wide round lock, held by a connection of its own for the whole round."""
    with connection_errors():
        async with engine.connect() as conn:
            got = (
                await conn.execute(text("select pg_try_advisory_lock(:k)"), {"k": ROUND_LOCK_KEY})
            ).scalar_one()
            if not got:
                raise RoundBusy("another retrain round is running")
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    await conn.execute(text("select pg_advisory_unlock(:k)"), {"k": ROUND_LOCK_KEY})


def base_datasets(settings: Settings) -> list[Dataset]:
    """The base training data: every trainable shared dataset present, and the seed set."""
    return load_all(settings.data_dir, trainable(settings.data_dir))


def round_config(settings: Settings, feedback_examples: int, run_id: int) -> TrainConfig:
    """A retrain's recipe: all the feedback each epoch, and the base sets as replay against
    forgetting, every one at `retrain_base_cap` (the full training's repeated finance tweets
    would make a round long and tweet-heavy)."""
    return replace(
        TrainConfig(encoder=settings.encoder),
        epochs=settings.retrain_epochs,
        per_dataset_cap=settings.retrain_base_cap,
        dataset_caps={FEEDBACK_DATASET: feedback_examples},
        dataset_repeats={},
        time_budget_s=settings.retrain_time_budget_s,
        seed=run_id,
    )


async def run_round(
    settings: Settings,
    engine: AsyncEngine,
    trigger: str,
    announce: Announce,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> RoundResult:
    """One round, start to end, under the round lock (RoundBusy when another runs).
    `announce` publishes the outcome (the model-events topic, in the worker)."""
    async with round_lock(engine):
        # We hold the lock, so a run still marked running was abandoned by a dead worker.
        await model_registry.abandon_running(engine)
        run_id = await model_registry.start_run(engine, trigger)
        try:
            result = await _round(settings, engine, run_id, announce, on_stage)
        except Exception as exc:
            log.exception("retrain round %s failed", run_id)
            await model_registry.finish_run(
                engine, run_id, "failed", summary={}, error=f"{type(exc).__name__}: {exc}"
            )
            raise
        await model_registry.finish_run(
            engine, run_id, result.status, summary=result.figures,
            report_dir=result.report_dir, labels_used=result.figures.get("labels_used", 0),
        )  # fmt: skip
        return result


async def _round(
    settings: Settings,
    engine: AsyncEngine,
    run_id: int,
    announce: Announce,
    on_stage: Callable[[str], None],
) -> RoundResult:
    from inference.model import load_model

    name = settings.triton_model_name
    on_stage("labels")
    gold_sets = await asyncio.to_thread(gold.gold_sets, settings)
    reserved = {e.text for examples in gold_sets.values() for e in examples}
    stored = await training_labels.load(engine)
    resolution = await asyncio.to_thread(
        labels.resolve,
        stored,
        await training_labels.gold(engine),
        labels.LabelPolicy.from_settings(settings),
        reserved,
    )
    summary: dict[str, Any] = {"labels": resolution.summary()}
    champion = await model_registry.champion(engine, name)
    if champion is None:
        return RoundResult(run_id, "failed", ["no champion: serve a model first"], figures=summary)
    since = await model_registry.last_run_started(engine)
    new = [label for label in stored if since is None or label.received_at >= since]
    excluded = resolution.excluded_labellers
    trusted = [x for x in new if labels.labeller_id(x) not in excluded]
    if stop := gate.untrusted_round(len(new), len(trusted), resolution.excluded_labellers):
        summary["decision"] = {"promote": False, "reasons": stop, "figures": {}}
        await announce(ModelEvent(
            event="rejected", model_name=name, version=None, previous_version=champion.version,
            trained_id=None, reason="; ".join(stop), at=datetime.now(UTC),
        ))  # fmt: skip
        return RoundResult(run_id, "rejected", stop, figures=summary)
    champion_dir = resolve(settings.trained_models, champion.trained_id)

    on_stage("train")
    datasets = await asyncio.to_thread(base_datasets, settings)
    feedback = Dataset(
        FEEDBACK_DATASET, "feedback of this deployment's labellers",
        list(resolution.train) * settings.retrain_feedback_repeat, LoadReport(FEEDBACK_DATASET),
    )  # fmt: skip
    config = round_config(settings, len(feedback.examples), run_id)
    champion_model = await asyncio.to_thread(load_model, champion_dir)
    challenger_model = await asyncio.to_thread(load_model, champion_dir)
    started = time.monotonic()
    trained = await asyncio.to_thread(
        train, config, [*datasets, feedback], log_progress, challenger_model
    )
    summary["train_seconds"] = round(time.monotonic() - started, 1)
    summary["stop_reason"] = trained.stop_reason

    on_stage("evaluate")
    holdout = list(resolution.holdout)

    def judge(model: Any) -> tuple[dict[str, DatasetMetrics], DatasetMetrics]:
        predict = predictor_for(model)
        return evaluate(gold_sets, predict), evaluate_examples(FEEDBACK_DATASET, holdout, predict)

    champ_gold, champ_feedback = await asyncio.to_thread(judge, champion_model)
    chall_gold, chall_feedback = await asyncio.to_thread(judge, trained.model)
    decision = gate.decide(
        champ_gold, chall_gold, champ_feedback, chall_feedback,
        gate.GatePolicy.from_settings(settings),
    )  # fmt: skip
    trained_id = new_version_id(run_id)
    folder = settings.trained_models / trained_id
    metrics = {**chall_gold, FEEDBACK_DATASET: chall_feedback}
    await asyncio.to_thread(
        save_version, folder, trained, metrics, {d.name: d.licence for d in datasets}
    )
    report_dir = folder / "report"
    await asyncio.to_thread(
        write_round_report, report_dir, run_id=run_id, champion=champion.trained_id,
        challenger=trained_id, champion_metrics={**champ_gold, FEEDBACK_DATASET: champ_feedback},
        challenger_metrics=metrics, decision=decision, summary=summary, history=trained.history,
    )  # fmt: skip
    figures = {**summary, "decision": asdict(decision), "labels_used": len(resolution.train)}
    result = RoundResult(
        run_id, "rejected", list(decision.reasons), trained_id=trained_id,
        report_dir=str(report_dir), figures=figures,
    )  # fmt: skip
    if not decision.promote:
        await model_registry.record_candidate(
            engine, name, trained_id, _summary_metrics(metrics), run_id,
            status="rejected", reason="; ".join(decision.reasons),
        )  # fmt: skip
        await announce(ModelEvent(
            event="rejected", model_name=name, version=None, previous_version=champion.version,
            trained_id=trained_id, reason="; ".join(decision.reasons), at=datetime.now(UTC),
        ))  # fmt: skip
        return result

    on_stage("export")
    version = await asyncio.to_thread(_export_and_serve, settings, trained.model, trained_id)
    await model_registry.record_candidate(
        engine, name, trained_id, _summary_metrics(metrics), run_id, version=version,
        status="candidate", reason=None,
    )  # fmt: skip
    await model_registry.promote(engine, name, version)
    await announce(ModelEvent(
        event="promoted", model_name=name, version=version, previous_version=champion.version,
        trained_id=trained_id, reason="; ".join(decision.reasons), at=datetime.now(UTC),
    ))  # fmt: skip
    result.status, result.version = "promoted", version
    return result


def log_progress(phase: str, done: int, total: int) -> None:
    """Training progress in the worker's log: each quarter of an epoch, and its end."""
    if done == total or done % max(1, total // 4) == 0:
        log.info("training %s: %d/%d batches", phase, done, total)


def _export_and_serve(settings: Settings, model: Any, trained_id: str) -> int:
    """Smoke-test the challenger apart from traffic, export it as the next version (not yet
    served), then switch serving to it. A failure leaves the champion serving."""
    from inference import serving
    from inference.repository import export

    repository = settings.model_repository.resolve()
    serving.clean_staging(repository)
    serving.stage_candidate(settings, model)
    version = export(model, repository, settings.triton_model_name, source=trained_id)
    serving.serve_version(settings, settings.triton_model_name, version)
    return version


def _summary_metrics(metrics: dict[str, DatasetMetrics]) -> dict[str, Any]:
    return {
        name: {
            "sentiment_macro_f1": m.sentiment_macro_f1,
            "sentiment_ece": m.sentiment_ece,
            "risk_macro_f1": m.risk_macro_f1,
            "examples": m.examples,
        }
        for name, m in metrics.items()
    }
