import importlib.util
import itertools
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from inference.client import Prediction
from streams.generator import (
    INCIDENT_ALERTS,
    INCIDENT_KINDS,
    ExpectedAlert,
    Workload,
    expected_json,
    generate,
    read_expected,
    write_jsonl,
)
from streams.rules import EntityState, RuleConfig, observe, state_key
from tonewatch.config import Settings
from tonewatch.contracts import RISK_LABELS, SENTIMENT_LABELS, InputMessage, Origin, ScoredMessage

pytestmark = pytest.mark.unit

STUB_FILE = Path(__file__).resolve().parents[2] / "inference" / "stub_model" / "model.py"
NOW = datetime(2026, 2, 1, tzinfo=UTC)
RULES = RuleConfig.from_settings(Settings())


def load_stub() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tonewatch_stub_model", STUB_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STUB = load_stub()


@pytest.fixture(scope="module")
def workload() -> Workload:
    return generate()


@pytest.fixture(scope="module")
def large() -> Workload:
    return generate(seed=11, messages=8000, tenant="big-co")


def predict(text: str) -> Prediction:
    sentiment, risks = STUB.score(text)
    return Prediction.from_rows(sentiment, risks, "stub")


def simulate(workload: Workload) -> list[ExpectedAlert]:
    """The alerts the rules raise on the workload when the stub scores it, repeats kept."""
    states: dict[tuple[str, str, str], EntityState] = defaultdict(EntityState)
    found: list[ExpectedAlert] = []
    for offset, message in enumerate(workload.messages):
        p = predict(message.text)
        scored = ScoredMessage(
            message=message,
            origin=Origin(topic=message.source, partition=0, offset=offset),
            sentiment=p.sentiment,
            scores=p.scores,
            risks=p.risks,
            model_version=p.model_version,
            scored_at=NOW,
        )
        key = state_key(scored)
        assert key is not None
        states[key], alerts = observe(states[key], scored, RULES, NOW)
        for alert in alerts:
            assert alert.entity is not None
            found.append(ExpectedAlert(alert.tenant, alert.source, alert.entity, alert.kind))
    return found


def test_same_arguments_same_bytes() -> None:
    first, second = generate(seed=3, messages=1500), generate(seed=3, messages=1500)
    assert [m.model_dump_json() for m in first.messages] == [
        m.model_dump_json() for m in second.messages
    ]
    assert first.expected == second.expected
    assert first.incidents == second.incidents
    assert first.intent == second.intent


def test_different_seeds_differ() -> None:
    texts = [[m.text for m in generate(seed=seed).messages] for seed in (1, 2)]
    assert texts[0] != texts[1]


def test_ids_unique_and_messages_valid(large: Workload) -> None:
    ids = [m.id for m in large.messages]
    assert len(set(ids)) == len(ids)
    for message in large.messages:
        assert InputMessage.model_validate_json(message.model_dump_json()) == message
        assert message.tenant == "big-co"
    assert set(large.intent) == set(ids)


@pytest.mark.parametrize("messages", [500, 2000, 8000])
def test_volume_is_about_what_was_asked(messages: int) -> None:
    workload = generate(messages=messages)
    assert 0.8 * messages <= len(workload.messages) <= 1.3 * messages + 200
    assert {m.source for m in workload.messages} == {"news", "reviews", "chats"}


def test_chronological_overall_and_per_subject(large: Workload) -> None:
    stamps = [m.ts for m in large.messages]
    assert stamps == sorted(stamps)
    last: dict[str | None, datetime] = {}
    for message in large.messages:
        assert message.subject is not None
        assert message.ts > last.get(message.subject, datetime.min.replace(tzinfo=UTC))
        last[message.subject] = message.ts


def test_background_volume_is_steady(workload: Workload) -> None:
    incident_ids = {i for incident in workload.incidents for i in incident.message_ids}
    per_window: dict[tuple[str | None, datetime], int] = defaultdict(int)
    for message in workload.messages:
        if message.source != "chats" and message.id not in incident_ids:
            start = message.ts.replace(second=0, microsecond=0)
            per_window[(message.subject, start)] += 1
    assert set(per_window.values()) <= {2, 3, 4}


def test_warm_up_before_every_incident(large: Workload) -> None:
    origin = large.messages[0].ts.replace(second=0, microsecond=0)
    for incident in large.incidents:
        if incident.source == "chats":
            assert incident.window_start >= origin + timedelta(minutes=8)
            continue
        windows = {
            m.ts.replace(second=0, microsecond=0)
            for m in large.messages
            if m.subject == incident.subject and m.ts < incident.window_start
        }
        assert len(windows) >= 8, incident


def test_expected_set_composition(large: Workload) -> None:
    kinds = [incident.kind for incident in large.incidents]
    assert sorted(set(kinds)) == sorted(INCIDENT_KINDS)
    assert all(kinds.count(kind) == 4 for kind in INCIDENT_KINDS)
    subjects = [incident.subject for incident in large.incidents]
    assert len(set(subjects)) == len(subjects)
    assert large.expected == {
        ExpectedAlert("big-co", incident.source, incident.subject, kind)
        for incident in large.incidents
        for kind in INCIDENT_ALERTS[incident.kind]
    }
    ids = {m.id for m in large.messages}
    for incident in large.incidents:
        assert set(incident.message_ids) <= ids
        assert len(incident.message_ids) >= 7 if incident.source == "chats" else 11


def test_escalating_chats_end_by_closing_the_account(workload: Workload) -> None:
    (incident,) = [i for i in workload.incidents if i.kind == "escalating_chat"]
    by_id = {m.id: m for m in workload.messages}
    turns = [by_id[i] for i in incident.message_ids]
    customer = [m for m in turns if m.speaker == "customer"]
    assert len(customer) >= 4
    assert "closing my account" in customer[-1].text
    negative = [predict(m.text).scores["negative"] for m in customer if m.turn != 1]
    assert all(a < b for a, b in itertools.pairwise(negative[:4]))
    assert turns[-1].ts - turns[0].ts < timedelta(minutes=3)


@pytest.mark.parametrize("seed", [7, 11])
def test_stub_reads_every_message_as_intended(seed: int) -> None:
    workload = generate(seed=seed, messages=6000)
    wrong = []
    for message in workload.messages:
        p = predict(message.text)
        risks = {risk for risk in RISK_LABELS if p.risks[risk] >= RULES.risk_threshold}
        intent = workload.intended(message.id)
        if (p.sentiment, risks) != (intent.sentiment, set(intent.risks)):
            wrong.append((message.text, p.sentiment, risks, intent))
    assert wrong == []


@pytest.mark.parametrize(("seed", "messages"), [(7, 2000), (1, 2000), (2, 500), (11, 8000)])
def test_rules_raise_exactly_the_expected_alerts(seed: int, messages: int) -> None:
    workload = generate(seed=seed, messages=messages)
    raised = simulate(workload)
    assert set(raised) == workload.expected
    assert len(raised) == len(workload.expected)  # each once: no second alert per incident


def test_stub_scores() -> None:
    sentiment, risks = STUB.score("$ACME CFO charged with securities fraud, shares plunge")
    assert sentiment[0] == max(sentiment) == 0.85  # three negative phrases
    assert [r >= 0.8 for r in risks] == [True, True, False, False, False, False, False]
    assert STUB.score("$ACME to present on Tuesday") == ([0.1, 0.8, 0.1], [0.02] * 7)
    assert STUB.score("It caught fire")[1][4] == 0.95
    assert STUB.score("A fired manager")[1] == [0.02] * 7  # whole words only
    batch_sentiment, batch_risks = STUB.score_batch(["great", "awful"])
    assert batch_sentiment.shape == (2, 3)
    assert batch_risks.shape == (2, 7)


def test_files(tmp_path: Path, workload: Workload) -> None:
    paths = write_jsonl(workload, tmp_path)
    assert set(paths) == {"news", "reviews", "chats"}
    read = [
        InputMessage.model_validate_json(line)
        for path in paths.values()
        for line in path.read_text().splitlines()
    ]
    assert sorted(read, key=lambda m: m.id) == sorted(workload.messages, key=lambda m: m.id)
    text = expected_json(workload)
    assert read_expected(text) == workload.expected
    document = json.loads(text)
    assert document["messages"] == len(workload.messages)
    assert len(document["incidents"]) == len(workload.incidents)
    assert text == expected_json(generate())


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="window_s"):
        generate(window_s=10)
    with pytest.raises(ValueError, match="timezone"):
        generate(start=datetime(2026, 1, 1))


def test_the_stub_outputs_follow_the_contract_label_order() -> None:
    """The stub is self-contained (Triton loads it without tonewatch), so its copies of the
    label lists are held to the contract here."""
    assert tuple(STUB.SENTIMENT_LABELS) == SENTIMENT_LABELS
    assert tuple(STUB.RISK_LABELS) == RISK_LABELS
