from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from streams.rules import EntityState, RuleConfig, already_applied, message_risk, observe, state_key
from tonewatch.config import Settings
from tonewatch.contracts import RISK_LABELS, SENTIMENT_LABELS, Alert, ScoredMessage, Sentiment

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CONFIG = RuleConfig.from_settings(Settings())
_offsets = count()


def scored(
    seconds: float,
    sentiment: Sentiment = "neutral",
    *,
    risks: dict[str, float] | None = None,
    source: str = "news",
    entity: str = "$ACME",
    negative: float | None = None,
    speaker: str = "customer",
    partition: int = 0,
    offset: int | None = None,
) -> ScoredMessage:
    n = next(_offsets) if offset is None else offset
    chat = {"conversation_id": entity, "speaker": speaker, "turn": n} if source == "chats" else {}
    scores = {label: 0.05 for label in SENTIMENT_LABELS} | {sentiment: 0.9}
    if negative is not None:
        scores["negative"] = negative
    return ScoredMessage.model_validate(
        {
            "message": {
                "id": f"m{n}", "source": source, "text": "some text", "tenant": "acme-bank",
                "entity": None if source == "chats" else entity,
                "ts": T0 + timedelta(seconds=seconds), **chat,
            },
            "origin": {"topic": source, "partition": partition, "offset": n},
            "sentiment": sentiment,
            "scores": scores,
            "risks": {label: 0.01 for label in RISK_LABELS} | (risks or {}),
            "model_version": "3",
            "scored_at": NOW,
        }
    )  # fmt: skip


def run(
    messages: list[ScoredMessage], config: RuleConfig = CONFIG
) -> tuple[EntityState, list[Alert]]:
    state, alerts = EntityState(), []
    for message in messages:
        state, new = observe(state, message, config, NOW)
        alerts += new
    return state, alerts


def background(windows: int = 8, per_window: int = 3) -> list[ScoredMessage]:
    """Calm traffic: a steady volume, one positive in three."""
    return [
        scored(w * 60 + i * 10, "positive" if i % 3 == 0 else "neutral")
        for w in range(windows)
        for i in range(per_window)
    ]


def kinds(alerts: list[Alert]) -> list[str]:
    return [a.kind for a in alerts]


def test_calm_traffic_raises_nothing() -> None:
    state, alerts = run(background(windows=30))
    assert alerts == []
    assert state.baseline.windows == 29
    assert state.baseline.volume.mean == pytest.approx(3.0)


def test_a_burst_of_negative_news_is_a_negative_and_a_volume_spike() -> None:
    burst = [scored(8 * 60 + i, "negative") for i in range(10)]
    _, alerts = run(background() + burst)
    assert sorted(kinds(alerts)) == ["negative_spike", "volume_spike"]
    spike = next(a for a in alerts if a.kind == "negative_spike")
    assert spike.figures["baseline_share"] == 0.0
    assert spike.figures["negative_share"] >= 0.3 + 0.0
    assert set(spike.evidence) <= {m.message.id for m in burst}
    assert spike.window_start == T0 + timedelta(minutes=8)
    assert spike.window_end == T0 + timedelta(minutes=9)
    assert spike.dedup_key == "acme-bank/news/$ACME/negative_spike/20260105T090800Z"


def test_spike_rules_wait_for_a_baseline() -> None:
    burst = [scored(2 * 60 + i, "negative") for i in range(10)]
    _, alerts = run(background(windows=2) + burst)
    assert alerts == []


def test_spike_rules_need_a_minimum_volume() -> None:
    few = [scored(8 * 60 + i, "negative") for i in range(4)]
    _, alerts = run(background() + few)
    assert "negative_spike" not in kinds(alerts)


def test_a_positive_surge_is_a_sentiment_shift_and_a_volume_spike() -> None:
    calm = [scored(w * 60 + i * 10, "neutral") for w in range(8) for i in range(3)]
    surge = [scored(8 * 60 + i, "positive") for i in range(10)]
    _, alerts = run(calm + surge)
    assert sorted(kinds(alerts)) == ["sentiment_shift", "volume_spike"]
    shift = next(a for a in alerts if a.kind == "sentiment_shift")
    assert shift.figures["shift"] >= 0.5
    assert "shifted up" in shift.summary


def test_a_window_alert_fires_once_per_window_and_then_cools_down() -> None:
    burst = [scored(8 * 60 + i, "negative") for i in range(20)]
    calm = [scored(w * 60 + i * 10, "neutral") for w in range(9, 20) for i in range(3)]
    next_burst = [scored(20 * 60 + i, "negative") for i in range(20)]  # 720 s after the first
    messages = background() + burst + calm + next_burst
    _, alerts = run(messages)
    assert kinds(alerts).count("negative_spike") == 1  # once in its window, then cooling
    _, alerts = run(messages, replace(CONFIG, cooldown_s=0))
    assert kinds(alerts).count("negative_spike") == 2


def test_message_risk_over_the_threshold_once_per_entity_and_cooldown() -> None:
    fraud = [scored(i * 30, "negative", risks={"fraud": 0.97}) for i in range(3)]
    legal = scored(100, "negative", risks={"legal_regulatory": 0.93})  # same story: quiet
    later = scored(2000, "negative", risks={"fraud": 0.9, "legal_regulatory": 0.92})
    _, alerts = run([*fraud, legal, later])
    risk_alerts = [a for a in alerts if a.kind == "message_risk"]
    assert [a.evidence for a in risk_alerts] == [
        ["m" + fraud[0].message.id[1:]],
        [later.message.id],
    ]
    assert [a.severity for a in risk_alerts] == ["critical", "medium"]
    assert risk_alerts[0].figures == {"p_fraud": 0.97}
    assert risk_alerts[1].figures == {"p_fraud": 0.9, "p_legal_regulatory": 0.92}
    assert risk_alerts[0].dedup_key == f"acme-bank/news/$ACME/message_risk/{fraud[0].message.id}"
    _, alerts = run([*fraud, legal, later], replace(CONFIG, cooldown_s=0))
    assert kinds(alerts).count("message_risk") == 5


def test_below_the_threshold_is_no_message_risk() -> None:
    assert message_risk(scored(0, risks={"fraud": 0.89}), CONFIG, NOW) == []


def test_a_message_without_entity_alerts_without_cooldown() -> None:
    first = scored(0, risks={"fraud": 0.9})
    assert state_key(first) is not None
    alerts = message_risk(first, CONFIG, NOW)  # no state: nothing to cool down
    assert kinds(alerts) == ["message_risk"]


def test_a_rising_customer_is_escalated_once() -> None:
    chat = [
        scored(0, negative=0.1, source="chats", entity="conv-1"),
        scored(10, negative=0.2, source="chats", entity="conv-1", speaker="agent"),
        scored(20, negative=0.3, source="chats", entity="conv-1"),
        scored(40, negative=0.5, source="chats", entity="conv-1"),
        scored(60, negative=0.8, source="chats", entity="conv-1"),
        scored(80, negative=0.9, source="chats", entity="conv-1"),
    ]
    _, alerts = run(chat)
    assert kinds(alerts) == ["escalation"]
    (alert,) = alerts
    assert alert.evidence == [chat[2].message.id, chat[3].message.id, chat[4].message.id]
    assert alert.entity == "conv-1"
    assert alert.source == "chats"
    assert alert.dedup_key == "acme-bank/chats/conv-1/escalation"


def test_churn_in_a_chat_escalates_instead_of_a_message_risk() -> None:
    turn = scored(0, "negative", risks={"churn": 0.93}, source="chats", entity="conv-2")
    _, alerts = run([turn])
    assert kinds(alerts) == ["escalation"]
    assert alerts[0].severity == "high"
    assert alerts[0].figures["p_churn"] == 0.93


def test_an_agent_turn_never_escalates_and_a_calm_chat_raises_nothing() -> None:
    chat = [
        scored(0, negative=0.2, source="chats", entity="conv-3"),
        scored(
            10,
            "negative",
            risks={"toxicity": 0.99},
            source="chats",
            entity="conv-3",
            speaker="agent",
        ),
        scored(20, negative=0.1, source="chats", entity="conv-3"),
        scored(30, negative=0.15, source="chats", entity="conv-3"),
    ]
    assert run(chat)[1] == []


def test_reprocessing_makes_the_same_alerts() -> None:
    messages = background() + [
        scored(8 * 60 + i, "negative", risks={"fraud": 0.9}) for i in range(10)
    ]
    first = run(messages)[1]
    again = run(messages)[1]
    assert [a.dedup_key for a in first] == [a.dedup_key for a in again]
    assert first == again


def test_redelivered_offsets_are_recognised_per_partition() -> None:
    message = scored(0, partition=1, offset=41)
    state, _ = observe(EntityState(), message, CONFIG, NOW)
    assert already_applied(state, message)
    assert already_applied(state, scored(1, partition=1, offset=40))
    assert not already_applied(state, scored(1, partition=1, offset=42))
    assert not already_applied(state, scored(1, partition=0, offset=5))


def test_state_survives_a_json_round_trip() -> None:
    state, _ = run([*background(), scored(8 * 60, "negative")])
    assert EntityState.from_json(state.to_json()) == state
    assert EntityState.from_json(None) == EntityState()


def test_late_messages_do_not_reopen_old_windows() -> None:
    state, _ = run(background(windows=3))
    late = scored(5, "negative")
    new, alerts = observe(state, late, CONFIG, NOW)
    assert new.window == state.window
    assert alerts == []


def test_config_comes_from_settings() -> None:
    from tonewatch.config import Settings

    config = RuleConfig.from_settings(Settings(window_s=30, rule_risk_threshold=0.7))
    assert (config.window_s, config.risk_threshold) == (30, 0.7)
