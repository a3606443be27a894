"""The alert rules: pure functions from an entity's state and one scored message to alerts.

Decisions depend only on the messages (their order, timestamps and scores), never on the
wall clock, so reprocessing after a crash or a rebalance makes the same alerts with the
same dedup keys, and the sinks drop the copies.

- `message_risk`: one message with a risk probability over the threshold, naming every risk
  over it (per entity, then quiet for the cooldown whatever the risk). In chats, churn and
  toxicity escalate instead.
- `volume_spike`, `negative_spike`, `sentiment_shift`: the open window against the
  entity's baseline, once the baseline has enough windows and the window enough messages.
  A fall in net sentiment that comes with a negative spike is that spike, not a shift.
- `escalation`: once per conversation, when the customer's last turns grow steadily more
  negative, or a customer turn threatens to leave or turns abusive.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import TypeAdapter

from streams.windows import Baseline, Window, advance, window_start
from tonewatch.config import Settings
from tonewatch.contracts import Alert, AlertKind, Risk, ScoredMessage, Severity

ESCALATION_RISKS: Final[frozenset[Risk]] = frozenset({"churn", "toxicity"})
SEVERE_RISKS: Final[frozenset[Risk]] = frozenset({"fraud", "product_safety"})
ESCALATION_NEGATIVE: Final = 0.6  # the last turn of a rising streak must be this negative
VOLUME_STD_FLOOR: Final = 1.0
SHARE_STD_FLOOR: Final = 0.05


@dataclass(frozen=True)
class RuleConfig:
    """The rules' knobs; their defaults and meanings live in Settings."""

    window_s: int
    alpha: float
    min_windows: int
    min_volume: int
    risk_threshold: float
    negative_share_delta: float
    negative_z: float
    volume_ratio: float
    volume_z: float
    shift_delta: float
    escalation_turns: int
    cooldown_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RuleConfig:
        return cls(
            window_s=settings.window_s,
            alpha=settings.baseline_alpha,
            min_windows=settings.baseline_min_windows,
            min_volume=settings.rule_min_volume,
            risk_threshold=settings.rule_risk_threshold,
            negative_share_delta=settings.rule_negative_share_delta,
            negative_z=settings.rule_negative_z,
            volume_ratio=settings.rule_volume_ratio,
            volume_z=settings.rule_volume_z,
            shift_delta=settings.rule_shift_delta,
            escalation_turns=settings.rule_escalation_turns,
            cooldown_s=settings.alert_cooldown_s,
        )


@dataclass(frozen=True)
class Turn:
    id: str
    ts: float
    negative: float


@dataclass
class EntityState:
    """Everything the rules remember about one (tenant, source, subject)."""

    window: Window | None = None
    baseline: Baseline = field(default_factory=Baseline)
    # The last Kafka offset applied per partition: a redelivered message is not counted twice.
    applied: dict[str, int] = field(default_factory=dict)
    # Event time of the last alert per kind (and per risk for message_risk), for cooldowns.
    last_alert: dict[str, float] = field(default_factory=dict)
    fired_in_window: list[str] = field(default_factory=list)
    customer_turns: list[Turn] = field(default_factory=list)
    escalated: bool = False

    def to_json(self) -> dict[str, Any]:
        return _STATE.dump_python(self, mode="json")  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> EntityState:
        return cls() if data is None else _STATE.validate_python(data)


_STATE: Final = TypeAdapter(EntityState)


def state_key(scored: ScoredMessage) -> tuple[str, str, str] | None:
    """(tenant, source, subject) of a message's entity, or None when it has none (then it
    gets no windows, only message_risk)."""
    message = scored.message
    subject = message.subject
    return None if subject is None else (message.tenant, message.source, subject)


def already_applied(state: EntityState, scored: ScoredMessage) -> bool:
    return scored.origin.offset <= state.applied.get(str(scored.origin.partition), -1)


def observe(
    state: EntityState, scored: ScoredMessage, config: RuleConfig, now: datetime
) -> tuple[EntityState, list[Alert]]:
    """Apply one scored message to its entity's state; returns the new state and its alerts."""
    state = replace(
        state,
        applied=state.applied | {str(scored.origin.partition): scored.origin.offset},
        last_alert=dict(state.last_alert),
        fired_in_window=list(state.fired_in_window),
    )
    alerts = message_risk(scored, config, now, state)
    ts = scored.message.ts.timestamp()
    moved = advance(
        state.window,
        state.baseline,
        window_start(ts, config.window_s),
        config.window_s,
        config.alpha,
    )
    if moved is not None:
        window, baseline = moved
        if state.window is None or window.start != state.window.start:
            state.fired_in_window = []
        window = replace(window, ids=list(window.ids), negative_ids=list(window.negative_ids))
        window.add(scored.message.id, scored.sentiment)
        state.window, state.baseline = window, baseline
        alerts += window_alerts(state, scored, config, now)
    if scored.message.source == "chats" and scored.message.speaker == "customer":
        alerts += escalation(state, scored, config, now)
    return state, alerts


def message_risk(
    scored: ScoredMessage, config: RuleConfig, now: datetime, state: EntityState | None = None
) -> list[Alert]:
    """A message whose risk probabilities cross the threshold. `state` (when the message has
    an entity) holds the per-risk cooldowns and is updated in place."""
    message = scored.message
    ts = message.ts.timestamp()
    risks = {
        risk: p
        for risk, p in scored.risks.items()
        if p >= config.risk_threshold
        and not (message.source == "chats" and risk in ESCALATION_RISKS)
    }
    # One alert per entity and cooldown, whatever the risk: the next messages of a fraud
    # story name legal trouble too, and a second alert on the same story is noise.
    if not risks or (state is not None and _cooling(state, "message_risk", ts, config)):
        return []
    if state is not None:
        state.last_alert["message_risk"] = ts
    top = max(risks.values())
    severity: Severity = "high" if top >= 0.95 else "medium"
    if severity == "high" and SEVERE_RISKS & risks.keys():
        severity = "critical"
    names = ", ".join(f"{r} {p:.0%}" for r, p in sorted(risks.items(), key=lambda kv: -kv[1]))
    return [
        _alert(
            scored,
            "message_risk",
            severity,
            message.ts,
            message.ts,
            figures={f"p_{risk}": round(p, 4) for risk, p in risks.items()},
            evidence=[message.id],
            summary=f"{_who(scored)}: {names} in {message.source} message {message.id!r}",
            key_suffix=message.id,
            now=now,
        )
    ]


def window_alerts(
    state: EntityState, scored: ScoredMessage, config: RuleConfig, now: datetime
) -> list[Alert]:
    window, baseline = state.window, state.baseline
    if window is None or baseline.windows < config.min_windows or window.count < config.min_volume:
        return []
    alerts = []
    ts = scored.message.ts.timestamp()
    count = window.count
    volume_z = baseline.volume.z(count, VOLUME_STD_FLOOR)
    if (
        count >= config.volume_ratio * max(baseline.volume.mean, 1.0)
        and volume_z >= config.volume_z
    ):
        alerts += _fire(
            state,
            scored,
            config,
            now,
            ts,
            "volume_spike",
            _severity(volume_z, config.volume_z),
            figures={
                "count": count,
                "baseline_mean": round(baseline.volume.mean, 3),
                "baseline_std": round(baseline.volume.std(VOLUME_STD_FLOOR), 3),
                "z": round(volume_z, 2),
            },
            evidence=window.ids,
            summary=f"{_who(scored)}: {count} {scored.message.source} messages in one window, "
            f"{baseline.volume.mean:.1f} usual",
        )
    share = window.negative_share
    share_rise = share - baseline.negative_share.mean
    share_z = baseline.negative_share.z(share, SHARE_STD_FLOOR)
    if share_rise >= config.negative_share_delta and share_z >= config.negative_z:
        alerts += _fire(
            state,
            scored,
            config,
            now,
            ts,
            "negative_spike",
            _severity(share_z, config.negative_z),
            figures={
                "count": count,
                "negative": window.negatives,
                "negative_share": round(share, 4),
                "baseline_share": round(baseline.negative_share.mean, 4),
                "z": round(share_z, 2),
            },
            evidence=window.negative_ids,
            summary=f"{_who(scored)}: {window.negatives} of {count} {scored.message.source} "
            f"messages negative ({share:.0%}, usually {baseline.negative_share.mean:.0%})",
        )
    shift = window.net_sentiment - baseline.net_sentiment.mean
    if abs(shift) >= config.shift_delta and share_rise < config.negative_share_delta:
        direction = "up" if shift > 0 else "down"
        alerts += _fire(
            state,
            scored,
            config,
            now,
            ts,
            "sentiment_shift",
            "medium",
            figures={
                "count": count,
                "net_sentiment": round(window.net_sentiment, 4),
                "baseline_net": round(baseline.net_sentiment.mean, 4),
                "shift": round(shift, 4),
            },
            evidence=window.ids,
            summary=f"{_who(scored)}: sentiment shifted {direction} by {abs(shift):.2f} "
            f"(net {window.net_sentiment:+.2f}, usually {baseline.net_sentiment.mean:+.2f})",
        )
    return alerts


def escalation(
    state: EntityState, scored: ScoredMessage, config: RuleConfig, now: datetime
) -> list[Alert]:
    """Track the customer's turns; escalate the conversation once."""
    message = scored.message
    turn = Turn(message.id, message.ts.timestamp(), scored.scores["negative"])
    state.customer_turns = [*state.customer_turns, turn][-config.escalation_turns :]
    if state.escalated:
        return []
    threats = {r: p for r in ESCALATION_RISKS if (p := scored.risks[r]) >= config.risk_threshold}
    turns = state.customer_turns
    negatives = [t.negative for t in turns]
    rising = (
        len(turns) == config.escalation_turns
        and all(a < b for a, b in itertools.pairwise(negatives))
        and negatives[-1] >= ESCALATION_NEGATIVE
    )
    if not threats and not rising:
        return []
    state.escalated = True
    reasons = [f"{r} {p:.0%}" for r, p in sorted(threats.items())]
    if rising:
        reasons.append("negativity rising " + " → ".join(f"{n:.2f}" for n in negatives))
    start = datetime.fromtimestamp(turns[0].ts, UTC)
    return [
        _alert(
            scored,
            "escalation",
            "high" if threats else "medium",
            start,
            message.ts,
            figures={f"p_{r}": round(p, 4) for r, p in threats.items()}
            | {f"negative_turn_{i}": round(n, 4) for i, n in enumerate(negatives, 1)},
            evidence=[t.id for t in turns],
            summary=f"conversation {message.conversation_id}: " + "; ".join(reasons),
            key_suffix="",
            now=now,
        )
    ]


def _cooling(state: EntityState, name: str, ts: float, config: RuleConfig) -> bool:
    last = state.last_alert.get(name)
    return last is not None and ts - last < config.cooldown_s


def _fire(
    state: EntityState,
    scored: ScoredMessage,
    config: RuleConfig,
    now: datetime,
    ts: float,
    kind: AlertKind,
    severity: Severity,
    *,
    figures: dict[str, float],
    evidence: list[str],
    summary: str,
) -> list[Alert]:
    """A window alert, at most once per window and kind, then quiet for the cooldown."""
    assert state.window is not None
    if kind in state.fired_in_window or _cooling(state, kind, ts, config):
        return []
    state.fired_in_window.append(kind)
    state.last_alert[kind] = ts
    start = datetime.fromtimestamp(state.window.start, UTC)
    return [
        _alert(
            scored,
            kind,
            severity,
            start,
            start + timedelta(seconds=config.window_s),
            figures=figures,
            evidence=list(evidence),
            summary=summary,
            key_suffix=start.strftime("%Y%m%dT%H%M%SZ"),
            now=now,
        )
    ]


def _severity(z: float, threshold: float) -> Severity:
    return "high" if z >= 2 * threshold else "medium"


def _who(scored: ScoredMessage) -> str:
    return scored.message.subject or scored.message.tenant


def _alert(
    scored: ScoredMessage,
    kind: AlertKind,
    severity: Severity,
    start: datetime,
    end: datetime,
    *,
    figures: dict[str, float],
    evidence: list[str],
    summary: str,
    key_suffix: str,
    now: datetime,
) -> Alert:
    message = scored.message
    key = "/".join((message.tenant, message.source, message.subject or "-", kind, key_suffix))
    return Alert(
        dedup_key=key.rstrip("/"),
        tenant=message.tenant,
        kind=kind,
        severity=severity,
        source=message.source,
        entity=message.subject,
        window_start=start,
        window_end=end,
        figures={name: float(value) for name, value in figures.items()},
        evidence=evidence,
        summary=summary,
        model_version=scored.model_version,
        created_at=now,
    )
