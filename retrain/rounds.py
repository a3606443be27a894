"""A retrain round: labels in, a better model served, or nothing (with the reasons).

`run_round` holds a Postgres advisory lock on a connection of its own for the whole round,
so two workers never train at once, and a crashed worker's lock dies with its connection.
Then:
1. resolve the labels of the label store (weighted votes; excluded, flagged and capped
   labellers; the held-out texts, a fixed share by hash);
2. fine-tune a challenger from the champion on the base data plus the accepted labels
   (deterministic seed, time budget), every input less the held-out and gold-set texts
   (`training_sets`), and record which texts it trained on (`training_texts.json`);
3. evaluate challenger and champion as served (the champion's served ONNX graph, the
   challenger's exported the same way) and in fp32, on the frozen gold sets and the
   held-out feedback, and let the gate decide;
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
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from inference.model import LoadedModel
from retrain import gate, gold, labels
from retrain.calibration import calibration_texts
from retrain.datasets import load_all, trainable
from retrain.datasets.base import Dataset, Example, LoadReport
from retrain.evaluate import (
    DatasetMetrics,
    Predictor,
    evaluate,
    evaluate_examples,
    predictor_for,
    sentiment_truth,
    served_predictor,
)
from retrain.labels import UnseenTexts
from retrain.report import write_round_report
from retrain.splits import fingerprint
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
TRAINING_TEXTS: Final = "training_texts.json"  # in the challenger's version folder

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


def training_sets(
    base: Sequence[Dataset], feedback: Sequence[Example], repeat: int, unseen: UnseenTexts
) -> list[Dataset]:
    """Everything a round trains on: the base sets (replay against forgetting) and, last,
    the accepted feedback (each label `repeat` times); all of them less every example whose
    text is in `unseen` (held out, or a gold set's), so that no evaluation sees a text the
    challenger trained on."""
    sets = [
        *base,
        Dataset(
            FEEDBACK_DATASET, "feedback of this deployment's labellers",
            list(feedback) * repeat, LoadReport(FEEDBACK_DATASET),
        ),
    ]  # fmt: skip
    return [replace(d, examples=[e for e in d.examples if e.text not in unseen]) for d in sets]


def fingerprints(datasets: Sequence[Dataset]) -> list[str]:
    """The distinct texts of `datasets`, each as the sha256 of its normalised form (sorted):
    a record of what a model trained on that does not copy the texts."""
    return sorted({fingerprint(e.text) for d in datasets for e in d.examples})


def judge(
    predict: Predictor, gold_sets: dict[str, list[Example]], holdout: Sequence[Example]
) -> tuple[gate.Evaluation, list[int]]:
    """A model's metrics on the gold sets and the held-out feedback, and its sentiment
    answer to each labelled held-out example (for the gate's paired test)."""
    sentiment, risk = predict([e.text for e in holdout])
    feedback = evaluate_examples(FEEDBACK_DATASET, holdout, lambda _texts: (sentiment, risk))
    labelled, _ = sentiment_truth(holdout)
    answers = sentiment[labelled].argmax(axis=1).tolist() if labelled else []
    return gate.Evaluation(evaluate(gold_sets, predict), feedback), answers


def _judge_served(
    champion_dir: Path,
    challenger: LoadedModel,
    gold_sets: dict[str, list[Example]],
    holdout: Sequence[Example],
    calibration: Sequence[str],
) -> tuple[tuple[gate.Evaluation, list[int]], tuple[gate.Evaluation, list[int]]]:
    """Both models as Triton serves them: the champion's served version folder, and the
    challenger exported the way a promotion exports it, into a scratch repository."""
    from inference.repository import export

    if not (champion_dir / "serving.json").is_file():
        raise FileNotFoundError(f"the champion's served version {champion_dir} is missing")
    with tempfile.TemporaryDirectory(prefix="tonewatch-gate-") as scratch:
        repository = Path(scratch) / "repository"  # its export staging stays in scratch too
        version = export(challenger, repository, "challenger", calibration=calibration)
        return (
            judge(served_predictor(champion_dir), gold_sets, holdout),
            judge(served_predictor(repository / "challenger" / str(version)), gold_sets, holdout),
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
    base = await asyncio.to_thread(base_datasets, settings)
    calibration = calibration_texts(base)  # of the int8 exports below
    inputs = await asyncio.to_thread(
        training_sets, base, resolution.train, settings.retrain_feedback_repeat, resolution.unseen
    )
    trained_texts = await asyncio.to_thread(fingerprints, inputs)
    summary["training_texts"] = len(trained_texts)
    feedback_examples = len(resolution.train) * settings.retrain_feedback_repeat
    config = round_config(settings, feedback_examples, run_id)
    champion_model = await asyncio.to_thread(load_model, champion_dir)
    challenger_model = await asyncio.to_thread(load_model, champion_dir)
    started = time.monotonic()
    trained = await asyncio.to_thread(train, config, inputs, log_progress, challenger_model)
    summary["train_seconds"] = round(time.monotonic() - started, 1)
    summary["stop_reason"] = trained.stop_reason

    on_stage("evaluate")
    started = time.monotonic()
    holdout = list(resolution.holdout)
    fp32 = [
        (await asyncio.to_thread(judge, predictor_for(model), gold_sets, holdout))[0]
        for model in (champion_model, trained.model)
    ]
    champion_served = settings.model_repository.resolve() / name / str(champion.version)
    (champ, champ_answers), (chall, chall_answers) = await asyncio.to_thread(
        _judge_served, champion_served, trained.model, gold_sets, holdout, calibration
    )
    summary["evaluate_seconds"] = round(time.monotonic() - started, 1)
    _, truth = sentiment_truth(holdout)
    decision = gate.decide(
        champ, chall, gate.HeldOutAnswers(truth.tolist(), champ_answers, chall_answers),
        gate.GatePolicy.from_settings(settings), fp32=(fp32[0], fp32[1]),
    )  # fmt: skip
    trained_id = new_version_id(run_id)
    folder = settings.trained_models / trained_id
    metrics = _by_set(chall)
    await asyncio.to_thread(
        save_version, folder, trained, metrics, {d.name: d.licence for d in base}
    )
    (folder / TRAINING_TEXTS).write_text(json.dumps({"sha256_of_normalised": trained_texts}))
    report_dir = folder / "report"
    await asyncio.to_thread(
        write_round_report, report_dir, run_id=run_id, champion=champion.trained_id,
        challenger=trained_id, champion_metrics=_by_set(champ),
        challenger_metrics=metrics, decision=decision, summary=summary, history=trained.history,
        fp32_metrics=(_by_set(fp32[0]), _by_set(fp32[1])),
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
    version = await asyncio.to_thread(
        _export_and_serve, settings, trained.model, trained_id, calibration
    )
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


def _export_and_serve(
    settings: Settings, model: Any, trained_id: str, calibration: Sequence[str]
) -> int:
    """Smoke-test the challenger apart from traffic, export it as the next version (not yet
    served), then switch serving to it. A failure leaves the champion serving."""
    from inference import serving
    from inference.repository import export

    repository = settings.model_repository.resolve()
    serving.clean_staging(repository)
    serving.stage_candidate(settings, model, calibration=calibration)
    version = export(
        model, repository, settings.triton_model_name, source=trained_id, calibration=calibration
    )
    serving.serve_version(settings, settings.triton_model_name, version)
    return version


def _by_set(evaluation: gate.Evaluation) -> dict[str, DatasetMetrics]:
    return {**evaluation.gold, FEEDBACK_DATASET: evaluation.feedback}


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
