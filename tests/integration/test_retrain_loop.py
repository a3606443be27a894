"""The whole retrain loop on the real services, under constant inference traffic.

Labellers post feedback through the real API; the real `tonewatch retrain worker` reads it
from Kafka, trains a challenger from the champion, gates it and promotes it through
Triton's model control. Along the way (RELIABILITY F6, M1, M2):
- the worker is killed -9 in the middle of its first export: the champion keeps serving,
  no half-written version is ever loaded, and the restarted worker completes the round;
- that round trained on no held-out text and no gold-set text (its recorded training
  texts against the stored labels and the gold sets, computed here), although its feedback
  is the seed set's own training sentences (so base replay holds every held-out one) plus
  a few gold-set sentences; and its gain passed the gate's paired significance test;
- the promotion swaps the served version with 0 failed inferences;
- a second round, fed poisoned labels (two colluding labellers answer the opposite of the
  truth, and hidden gold items catch them), is rejected with its reasons;
- `tonewatch model rollback` under traffic returns to the previous champion.

It runs in a database of its own (the label store and the registry are global to a
deployment), with its own topics and its own model name. Its base and gold data are the
seed set alone, whether ../shared/data is there or not: the loop's mechanics do not depend
on the data, and the twelve shared sets would more than double its time (~6.5 min). What
a round draws from them is covered by `round_config`'s unit test.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from inference import serving
from inference.client import TritonClassifier
from inference.model import load_model
from inference.repository import export
from retrain.calibration import calibration_for
from retrain.datasets import seed
from retrain.datasets.base import Example
from retrain.gold import gold_sets
from retrain.rounds import TRAINING_TEXTS
from retrain.splits import fingerprint, held_out, split_of
from storage import messages, model_registry, training_labels
from storage.db import create_engine, migrate
from streams.topics import ensure_topics
from tests.integration.api_harness import ApiServer, make_key, start_api
from tests.integration.conftest import ROOT, TONEWATCH, run_cli
from tonewatch.config import Settings
from tonewatch.contracts import InputMessage, Origin, ScoredMessage
from tonewatch.services.postgres import PostgresService
from tonewatch.workers import settings_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUND_TIMEOUT_S = 420.0


@dataclass
class Traffic:
    """Constant inference load on the model from a thread of its own: every call counted."""

    settings: Settings
    concurrency: int = 4
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    versions: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(30)

    def since(self, t: float) -> set[str]:
        return {v for at, v in self.versions if at >= t}

    async def _run(self) -> None:
        async with TritonClassifier(
            url=self.settings.triton_grpc_url, model_name=self.settings.triton_model_name,
            timeout_s=10.0, max_concurrency=self.concurrency, retries=0,
        ) as client:  # fmt: skip

            async def one() -> None:
                while not self._stop.is_set():
                    try:
                        (prediction,) = await client.classify(["Shares of ACME rose 3% today."])
                        self.ok += 1
                        self.versions.append((time.monotonic(), prediction.model_version))
                    except Exception as exc:  # every failure counts, whatever it is
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.05)

            await asyncio.gather(*(one() for _ in range(self.concurrency)))


@pytest.fixture
def loop_settings(settings: Settings, seed_model_dir: Path, tmp_path: Path) -> Iterator[Settings]:
    """A deployment of its own: database, topics, consumer groups, model name, models dir."""
    run = f"rt{uuid.uuid4().hex[:8]}"
    base = settings.database_url.rsplit("/", 1)[0]
    models_dir = tmp_path / "models"
    shutil.copytree(seed_model_dir, models_dir / seed_model_dir.name)
    isolated = settings.model_copy(
        update={
            "database_url": f"{base}/tw_{run}",
            "kafka_topic_prefix": f"{run}.",
            "worker_app_id": run,
            "triton_model_name": f"selftest_{run}",
            "models_dir": models_dir,
            "data_dir": tmp_path / "no-shared-data",
            "retrain_min_labels": 150,
            "retrain_epochs": 3,
            "retrain_base_cap": 40,
            "retrain_time_budget_s": 120.0,
            "retrain_gold_cap": 60,
            "retrain_holdout_share": 0.3,
            # 29 of round 1's 126 texts are in the held-out share (+ the gold-set texts').
            "retrain_min_holdout": 25,
            # The seed gold set has 37 examples: one changed answer moves macro-F1 by ~3
            # points and ECE by as much, so the default 0.02 tolerances would reject on
            # noise. This test is about the loop's mechanics.
            "retrain_gold_tolerance": 0.08,
            "retrain_ece_tolerance": 0.1,
        }
    )
    PostgresService(isolated).after_ready()  # creates the database
    migrate(isolated.database_url)
    asyncio.run(ensure_topics(isolated))
    repository = isolated.model_repository.resolve()
    champion = models_dir / seed_model_dir.name
    export(load_model(champion), repository, isolated.triton_model_name, source=champion.name,
           calibration=calibration_for(champion, isolated.data_dir))  # fmt: skip
    serving.serve_version(isolated, isolated.triton_model_name, 1)
    asyncio.run(_adopt(isolated, seed_model_dir.name))
    yield isolated
    _unload(isolated)


async def _adopt(settings: Settings, trained_id: str) -> None:
    engine = create_engine(settings)
    try:
        await model_registry.adopt_existing(engine, settings.triton_model_name, 1, trained_id, {})
    finally:
        await engine.dispose()


def _unload(settings: Settings) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        client.unload_model(settings.triton_model_name)
    finally:
        client.close()
    shutil.rmtree(settings.model_repository.resolve() / settings.triton_model_name, True)


def _examples(split: str = "train") -> list[Example]:
    """The seed set's sentences of a split with a sentiment: texts with known answers."""
    return [e for e in seed.load().examples if e.sentiment and split_of(e.text) == split]


async def _stored_texts(settings: Settings) -> set[str]:
    engine = create_engine(settings)
    try:
        return {label.text for label in await training_labels.load(engine)}
    finally:
        await engine.dispose()


def _check_held_out_and_gold_untrained(settings: Settings, run: Any, report_dir: Path) -> None:
    """What the round trained on (its recorded texts) holds no held-out text and no gold-set
    text, both computed here from the stored labels and the gold sets; and the gate's paired
    test found the held-out gain real."""
    trained = set(
        json.loads((report_dir.parent / TRAINING_TEXTS).read_text())["sha256_of_normalised"]
    )
    stored = asyncio.run(_stored_texts(settings))
    held = {t for t in stored if held_out(t, settings.retrain_holdout_share)}
    gold = {e.text for examples in gold_sets(settings).values() for e in examples}
    assert len(held) >= settings.retrain_min_holdout
    assert stored & gold, "the feedback holds gold-set texts: the check below is not vacuous"
    assert not {fingerprint(t) for t in held | gold} & trained
    # Not vacuous either: the other feedback texts and the seed set's trained ones are there.
    others = {fingerprint(t) for t in stored - held - gold}
    assert len(others) > 80
    assert others <= trained
    assert len(trained) > len(others) + 50

    summary = run.summary
    assert summary["labels"]["holdout"] == len(held)
    gain = summary["decision"]["figures"]["feedback"]["gain"]
    assert gain["examples"] == len(held)
    assert gain["confidence"] == settings.retrain_gain_confidence
    assert gain["lower_bound"] > 0, gain
    assert "lower bound" in summary["decision"]["reasons"][0]
    fp32 = summary["decision"]["figures"]["feedback"]["fp32"]
    assert fp32["challenger"]["sentiment_macro_f1"] is not None


def _store(settings: Settings, tenant: str, texts: list[str], start: int) -> list[str]:
    """Scored messages for labelling (what the pipeline would have stored); returns ids."""
    now = datetime.now(UTC)
    rows = [
        ScoredMessage(
            message=InputMessage(
                id=f"m{start + i}",
                source="news",
                text=text,
                tenant=tenant,
                ts=now - timedelta(minutes=i),
            ),
            origin=Origin(topic="news", partition=0, offset=start + i),
            sentiment="neutral",
            scores={"negative": 0.3, "neutral": 0.4, "positive": 0.3},
            risks={},
            model_version="1",
            scored_at=now,
        )
        for i, text in enumerate(texts)
    ]

    async def record() -> None:
        engine = create_engine(settings)
        try:
            await messages.record(engine, rows)
        finally:
            await engine.dispose()

    asyncio.run(record())
    return [f"m{start + i}" for i in range(len(texts))]


def _label(api: ApiServer, token: str, ids: list[str], answers: list[dict[str, Any]]) -> None:
    with api.client(token) as client:
        for message_id, answer in zip(ids, answers, strict=True):
            body = {"message_id": message_id, "source": "news", **answer}
            response = client.post("/v1/feedback", json=body)
            assert response.status_code == 201, response.text


def _answer(example: Example, flip: Callable[[str], str] = lambda s: s) -> dict[str, Any]:
    risks = sorted(r for r, present in example.risks.items() if present)
    return {"sentiment": flip(example.sentiment or "neutral"), "risks": risks}


async def _runs(settings: Settings) -> list[model_registry.RetrainRun]:
    engine = create_engine(settings)
    try:
        return await model_registry.recent_runs(engine)
    finally:
        await engine.dispose()


def _wait_for_run(settings: Settings, done: int, worker: subprocess.Popen[bytes], log: Path) -> Any:
    """Wait until `done` rounds have come to a decision; returns the newest. A round that
    failed (other than one abandoned by a killed worker) fails the test at once."""
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    while time.monotonic() < deadline:
        runs = asyncio.run(_runs(settings))
        failed = [r for r in runs if r.status == "failed" and r.error != model_registry.ABANDONED]
        assert not failed, (failed, log.read_text()[-4000:])
        decided = [r for r in runs if r.status in ("promoted", "rejected")]
        if len(decided) >= done:
            return decided[0]
        assert worker.poll() is None, log.read_text()[-4000:]
        time.sleep(2)
    raise AssertionError(f"no round finished in time: {log.read_text()[-4000:]}")


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [TONEWATCH, "retrain", "worker"], cwd=ROOT, env={**os.environ, **env},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


# Two trained rounds on the seed set: ~2.5 min.
@pytest.mark.timeout(900)
@pytest.mark.reliability("M1", "M2", "F6")
def test_feedback_trains_gates_promotes_and_rolls_back_under_traffic(
    loop_settings: Settings, api_env: dict[str, str], tmp_path: Path
) -> None:
    settings = loop_settings
    env = {**settings_env(settings), **api_env}
    api = start_api(tmp_path / "api.log", env)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    # Three, so that no one labeller decides a message (the share cap counts deciders).
    honest = [make_key(settings, tenant, n, ("label",)) for n in ("alice", "bob", "erin")]
    examples = _examples()
    assert len(examples) >= 200
    log = tmp_path / "retrain.log"
    name = settings.triton_model_name
    worker: subprocess.Popen[bytes] | None = None
    try:
        with Traffic(settings) as traffic:
            # Round 1: three labellers agree on the true answers of 126 messages (378
            # labels): 120 of the seed set's training sentences and 6 of its gold set's.
            first = [*examples[:120], *_examples("test")[:6]]
            ids = _store(settings, tenant, [e.text for e in first], 0)
            for token in honest:
                _label(api, token, ids, [_answer(e) for e in first])

            # M2: kill -9 the worker while it exports the promoted challenger.
            staging = settings.model_repository.resolve().parent / ".export-staging"
            leftovers = set(staging.iterdir()) if staging.is_dir() else set()
            worker = _start_worker(env, log)
            deadline = time.monotonic() + ROUND_TIMEOUT_S
            while not (staging.is_dir() and set(staging.iterdir()) - leftovers):
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                assert worker.poll() is None, log.read_text()[-4000:]
                time.sleep(0.05)
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(30)
            assert serving.served_version(settings.triton_grpc_url, name) == 1
            killed_at = time.monotonic()
            time.sleep(2)
            assert traffic.since(killed_at) == {"1"}

            # The restarted worker runs the round again, to the end: promoted, no failure.
            worker = _start_worker(env, log)
            promoted = _wait_for_run(settings, 1, worker, log)
            assert promoted.status == "promoted", (promoted, log.read_text()[-4000:])
            assert serving.served_version(settings.triton_grpc_url, name) == 2
            swapped_at = time.monotonic()
            time.sleep(2)
            assert traffic.since(swapped_at) == {"2"}
            report = Path(promoted.report_dir or "") / "report.json"
            assert json.loads(report.read_text())["decision"] == "promoted"
            _check_held_out_and_gold_untrained(settings, promoted, report.parent)

            # Round 2 (M1): two colluding labellers answer the opposite of the truth on 80
            # new messages, half of which an admin has planted as hidden gold items.
            colluders = [make_key(settings, tenant, n, ("label",)) for n in ("carol", "dave")]
            poisoned = examples[120:200]
            ids = _store(settings, tenant, [e.text for e in poisoned], 1000)
            admin = make_key(settings, tenant, "admin", ("admin",))
            gold = [{"message_id": i, "source": "news", **_answer(e)}
                    for i, e in zip(ids[::2], poisoned[::2], strict=True)]  # fmt: skip
            with api.client(admin) as client:
                assert client.post("/v1/labeling/gold", json=gold).status_code == 200
            opposite = {"positive": "negative", "negative": "positive", "neutral": "negative"}
            for token in colluders:
                _label(api, token, ids, [_answer(e, opposite.__getitem__) for e in poisoned])
            rejected = _wait_for_run(settings, 2, worker, log)
            assert rejected.status == "rejected", (rejected, log.read_text()[-4000:])
            (reason,) = rejected.summary["decision"]["reasons"]
            assert "trusted" in reason
            assert f"{tenant}/carol" in reason
            assert f"{tenant}/dave" in reason
            assert serving.served_version(settings.triton_grpc_url, name) == 2

            # Rollback under traffic, timed.
            started = time.monotonic()
            result = run_cli("model", "rollback", "--json", env=env, timeout=120)
            assert result.returncode == 0, result.stdout + result.stderr
            assert time.monotonic() - started < 60
            assert serving.served_version(settings.triton_grpc_url, name) == 1
            rolled_at = time.monotonic()
            time.sleep(2)
            assert traffic.since(rolled_at) == {"1"}
            worker.terminate()
            worker.wait(60)
        # F6: not one inference failed through the kill, both swaps and the rollback.
        assert traffic.failures == []
        assert traffic.ok > 100
        listed = run_cli("model", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)["versions"]
        statuses = {row["version"]: row["status"] for row in rows}
        assert statuses[1] == "champion"
        assert statuses[2] == "retired"
    finally:
        api.stop()
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
