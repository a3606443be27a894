"""A seeded workload: calm background traffic with planted incidents whose alerts are known.

The fault tests' ledger and the end-to-end benchmark replay it: `expected` is the set E of
alerts the pipeline must raise, derived offline from what was planted, never from a run.

Background is calm by construction. Every ticker and product gets 2-4 messages in every
window, fewer than the spike rules' minimum volume, and no background text names a risk, so
background alone raises nothing. Polite support chats never grow angrier turn by turn. An
incident puts 11-13 messages into one window of one entity after `warmup_windows` windows of
background (so that the entity has a baseline), or an escalating conversation:

- `fraud_story` (news): negative headlines about fraud, charges, an SEC probe; the ticker's
  background has no negative headline, so its negative share jumps from 0.
  -> message_risk, negative_spike, volume_spike
- `recall_wave` (reviews): negative reviews about burns, fire, overheating, a recall; the
  product's background has no negative review. -> message_risk, negative_spike, volume_spike
- `rally` (news): positive headlines on a ticker whose background is all neutral, so the
  net sentiment moves by > 0.7. -> volume_spike, sentiment_shift
- `escalating_chat` (chats): 4-5 customer turns, each angrier than the last, ending with
  "I'm closing my account". -> escalation

With 3 +- 1 messages per window, the volume baseline is at most 4 with a std floored at 1, so
13+ messages in a window pass both the 3x ratio and z >= 3. Conversations last at most two
minutes, too short for a baseline, so window rules never judge a chat.

Each template records what it is meant to say (`Intent`: sentiment and risks), so a test can
check that a model (e.g. the stub) reads every generated message as intended.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal, get_args

from pydantic import JsonValue

from tonewatch.contracts import SOURCES, AlertKind, InputMessage, Risk, Sentiment, Source, Speaker

IncidentKind = Literal["fraud_story", "recall_wave", "rally", "escalating_chat"]
INCIDENT_KINDS: Final[tuple[IncidentKind, ...]] = get_args(IncidentKind)

INCIDENT_ALERTS: Final[Mapping[IncidentKind, frozenset[AlertKind]]] = {
    "fraud_story": frozenset({"message_risk", "negative_spike", "volume_spike"}),
    "recall_wave": frozenset({"message_risk", "negative_spike", "volume_spike"}),
    "rally": frozenset({"volume_spike", "sentiment_shift"}),
    "escalating_chat": frozenset({"escalation"}),
}

DEFAULT_START: Final = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MESSAGES_PER_INCIDENT_SET: Final = 2000  # one incident of each kind per this many messages
WINDOWS_AFTER_WARMUP: Final = 10
BACKGROUND_PER_WINDOW: Final = (2, 3, 3, 4)  # 3 +- 1, mean 3
INCIDENT_MESSAGES: Final = (11, 13)  # inclusive range per window incident
SOURCE_SHARE: Final[Mapping[Source, float]] = {"news": 0.4, "reviews": 0.35, "chats": 0.25}
MEAN_CHAT_TURNS: Final = 5.5  # polite conversations have 4-6 turns
TURN_GAP_MS: Final = (4_000, 15_000)
MAX_CHAT_TURNS: Final = 9
# A conversation lasts at most 8 gaps of 15 s. With windows of 30 s or more it spans at most
# five windows, so it never has the five closed windows a baseline needs.
MAX_CHAT_MS: Final = (MAX_CHAT_TURNS - 1) * TURN_GAP_MS[1]
MIN_WINDOW_S: Final = 30


@dataclass(frozen=True)
class ExpectedAlert:
    """One alert the pipeline must raise, identified by what it is about, not when."""

    tenant: str
    source: Source
    subject: str
    kind: AlertKind

    def as_dict(self) -> dict[str, str]:
        return {
            "tenant": self.tenant,
            "source": self.source,
            "subject": self.subject,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class Intent:
    """What a generated text is meant to say: its sentiment and the risks it names."""

    sentiment: Sentiment
    risks: frozenset[Risk] = frozenset()


@dataclass(frozen=True)
class Incident:
    kind: IncidentKind
    tenant: str
    source: Source
    subject: str
    window_start: datetime
    description: str
    message_ids: tuple[str, ...]

    @property
    def expected(self) -> frozenset[ExpectedAlert]:
        return frozenset(
            ExpectedAlert(self.tenant, self.source, self.subject, kind)
            for kind in INCIDENT_ALERTS[self.kind]
        )

    def as_dict(self) -> dict[str, JsonValue]:
        return {
            "kind": self.kind,
            "tenant": self.tenant,
            "source": self.source,
            "subject": self.subject,
            "window_start": self.window_start.isoformat(),
            "description": self.description,
            "message_ids": list(self.message_ids),
            "alerts": [str(kind) for kind in sorted(INCIDENT_ALERTS[self.kind])],
        }


@dataclass(frozen=True)
class Workload:
    messages: list[InputMessage]
    expected: frozenset[ExpectedAlert]
    incidents: list[Incident]
    intent: Mapping[str, Intent] = field(repr=False)

    def intended(self, message_id: str) -> Intent:
        return self.intent[message_id]

    def by_source(self) -> dict[Source, list[InputMessage]]:
        grouped: dict[Source, list[InputMessage]] = {source: [] for source in SOURCES}
        for message in self.messages:
            grouped[message.source].append(message)
        return grouped


# --- templates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """A text template ({ticker}, {item}, ... filled from the slots) and what it says."""

    text: str
    intent: Intent


def neutral(text: str) -> Line:
    return Line(text, Intent("neutral"))


def positive(text: str) -> Line:
    return Line(text, Intent("positive"))


def negative(text: str, *risks: Risk) -> Line:
    return Line(text, Intent("negative", frozenset(risks)))


NEWS_NEUTRAL: Final = (
    neutral("{ticker} to present at the {conference} conference on {day}"),
    neutral("{ticker} schedules {quarter} results call for {day}"),
    neutral("{ticker} names {person} as chief {role} officer"),
    neutral("{ticker} opens a new office in {city}"),
    neutral("{ticker} board declares quarterly dividend of {cents} cents per share"),
    neutral("{ticker} completes previously announced share buyback"),
    neutral("{ticker} shares little changed ahead of {quarter} results"),
    neutral("{ticker} to hold annual shareholder meeting in {city} on {day}"),
    neutral("{ticker} expands {segment} partnership with {partner}"),
    neutral("{ticker} confirms {quarter} guidance, unchanged from {month}"),
    neutral("{ticker} appoints {person} to its board of directors"),
    neutral("{ticker} trading volume in line with its {month} average"),
)
NEWS_POSITIVE: Final = (
    positive("{ticker} shares climb after {partner} deal"),
    positive("{ticker} wins {segment} contract with {partner}"),
    positive("{ticker} reports solid {segment} growth in {quarter}"),
    positive("{ticker} beats analyst estimates for {quarter}"),
)
NEWS_NEGATIVE: Final = (
    negative("{ticker} shares slip as {segment} orders cool"),
    negative("{ticker} misses revenue estimates for {quarter}"),
)
FRAUD_HEADLINES: Final = (
    negative("{ticker} shares plunge as SEC probe widens into accounting fraud", "fraud",
             "legal_regulatory"),
    negative("{ticker} executives charged with securities fraud, stock tumbles", "fraud",
             "legal_regulatory"),
    negative("{ticker} faces SEC investigation over fraudulent revenue reporting", "fraud",
             "legal_regulatory"),
    negative("Whistleblower alleges fraud at {ticker}; shares sink", "fraud"),
    negative("{ticker} CFO arrested on fraud charges", "fraud", "legal_regulatory"),
    negative("{ticker} plunges after auditor flags possible fraud in {segment} unit", "fraud"),
    negative("Short seller accuses {ticker} of fraud, stock slumps {pct}%", "fraud"),
    negative("Investors file class action against {ticker} over alleged fraud", "fraud",
             "legal_regulatory"),
    negative("{ticker} tumbles {pct}% on report of SEC probe into {segment} accounting",
             "legal_regulatory"),
    negative("{ticker} admits {segment} unit cooked the books, shares plunge", "fraud"),
)  # fmt: skip
RALLY_HEADLINES: Final = (
    positive("{ticker} posts record earnings, shares surge {pct}%"),
    positive("{ticker} soars after {firm} upgrade to buy"),
    positive("{ticker} beats estimates and lifts full-year outlook on strong demand"),
    positive("{ticker} stock rallies on record {segment} orders"),
    positive("Analysts upgrade {ticker} after a strong quarter"),
    positive("{ticker} jumps {pct}% as profit beats expectations"),
    positive("{ticker} hits all-time high on {segment} growth"),
    positive("{ticker} shares climb on record {quarter} revenue"),
    positive("{firm} upgrades {ticker}, sees strong growth ahead"),
    positive("{ticker} surges as {segment} sales beat forecasts"),
)

REVIEW_POSITIVE: Final = (
    positive("Love this {item}, works perfectly every morning."),
    positive("Great {item} for the price, would recommend."),
    positive("Excellent build quality and the {part} feels sturdy."),
    positive("Does exactly what I need. Very happy with it."),
    positive("Arrived quickly and looks fantastic in {color}."),
    positive("Second {item} I've bought from them, reliable as ever."),
    positive("Quiet, quick and easy to clean. Brilliant."),
)
REVIEW_NEUTRAL: Final = (
    neutral("It does the job. The {part} is about what you'd expect."),
    neutral("Average {item}. Nothing special, nothing wrong with it."),
    neutral("Took a few days to arrive. Works as described."),
    neutral("Bought this to replace an older {item}."),
    neutral("The {color} finish matches the photos in the listing."),
    neutral("Smaller than I expected, but it fits on the counter."),
)
REVIEW_NEGATIVE: Final = (
    negative("A bit disappointed, the {part} came loose after a week."),
    negative("Poor instructions, took ages to set up the {part}."),
)
RECALL_REVIEWS: Final = (
    negative("My {item} overheated and burned my hand. Dangerous!", "product_safety"),
    negative("The {item} caught fire on the second day. Terrible.", "product_safety"),
    negative("Smoke poured out of the {item} after ten minutes. Awful.", "product_safety"),
    negative("Got an electric shock from the {part} of this {item}.", "product_safety"),
    negative("Overheats every single time and the {part} melted.", "product_safety"),
    negative("Just saw the recall notice for the {product}. Mine overheats too.",
             "product_safety"),
    negative("The {part} gets dangerously hot and burns your fingers.", "product_safety"),
    negative("The plug sparked and the {item} caught fire. Do not buy.", "product_safety"),
    negative("Fire hazard. The {item} overheated while I was in the next room.",
             "product_safety"),
    negative("Unsafe {item}, the {part} burned my daughter. Returned it.", "product_safety"),
)  # fmt: skip

Lines = tuple[Line, ...]
# Background: pools of lines with their weights.
Mix = tuple[tuple[Lines, int], ...]
Step = tuple[Speaker, Lines]
# Polite conversations: only the customer's first turn may sound unhappy, so their
# negativity never rises over three turns.
CHAT_TOPICS: Final[tuple[tuple[Step, ...], ...]] = (
    (
        ("customer", (
            neutral("Hi, I ordered a {item} last week and it hasn't shipped yet."),
            negative("Hello, my parcel is late and I need the {item} by {day}."),
            neutral("Hi there, where is my order {order}?"),
        )),
        ("agent", (
            neutral("Hello, I can check that for you. Could you share the order number?"),
            neutral("Let me look that up. Which email did you order with?"),
        )),
        ("customer", (neutral("Sure, it's {order}."), neutral("It's the one under my name."))),
        ("agent", (
            positive("Thanks. It left our warehouse this morning and arrives on {day}."),
            neutral("I see it now: the courier will deliver it on {day}."),
        )),
        ("customer", (
            positive("Great, thank you for the help!"),
            positive("Perfect, thanks a lot."),
        )),
        ("agent", (neutral("You're welcome. Have a nice {day}!"),)),
    ),
    (
        ("customer", (
            neutral("Hi, I moved house and need to change my delivery address."),
            neutral("Can I update the address on my account?"),
        )),
        ("agent", (neutral("Of course. What is the new address?"),)),
        ("customer", (neutral("It's {number} {street}, {city}."),)),
        ("agent", (
            neutral("Done, the address on your account is now {number} {street}."),
            positive("Thanks, I've updated it. Future orders go to {street}."),
        )),
        ("customer", (positive("Brilliant, thanks!"), neutral("OK, that's all for today."))),
    ),
    (
        ("customer", (
            negative("I think I was charged twice for my {month} invoice, which is bad."),
            neutral("Hi, I have a question about my {month} invoice."),
            neutral("There are two payments for the same invoice on my statement."),
        )),
        ("agent", (neutral("Let me check your billing history."),)),
        ("customer", (neutral("The second payment was on the {date} of {month}."),)),
        ("agent", (
            neutral("I see a duplicate payment. I've refunded it; it takes 3 to 5 days."),
            neutral("You're right, one payment is a duplicate. The refund is on its way."),
        )),
        ("customer", (
            positive("Thank you, that was very helpful."),
            positive("Excellent, appreciate the quick answer."),
        )),
        ("agent", (positive("Thanks for contacting us!"), neutral("Anything else I can do?"))),
    ),
    (
        ("customer", (
            neutral("How do I reset my password? The reset email never arrives."),
            neutral("Hi, I forgot my password."),
        )),
        ("agent", (
            neutral("I can send a new reset link. Is the email on file still {email}?"),
            neutral("Could you confirm the email address on your account?"),
        )),
        ("customer", (neutral("Yes, that's the right address."), neutral("Yes, {email}."))),
        ("agent", (neutral("I've sent a new link. It is valid for 30 minutes."),)),
        ("customer", (
            positive("Got it and it worked, thanks!"),
            neutral("OK, I see the email now."),
        )),
    ),
    (
        ("customer", (
            neutral("Which plan includes {feature}?"),
            neutral("Hi, I'm thinking about moving to the {plan} plan."),
        )),
        ("agent", (
            neutral("The {plan} plan includes {feature} for {cents} a month."),
            neutral("{feature} comes with the {plan} plan."),
        )),
        ("customer", (neutral("Can I switch in the middle of the month?"),)),
        ("agent", (neutral("Yes, the price is prorated from the day you switch."),)),
        ("customer", (
            positive("Perfect, I'll switch then. Thanks!"),
            neutral("OK, I'll think about it."),
        )),
    ),
)  # fmt: skip

# An escalating conversation: the customer's anger rises by one level per turn (the level is
# how many more negative than positive phrases a turn holds); the last turn quits.
ANGRY_OPENERS: Final = (
    neutral("Hi, I'm writing about my order {order}."),
    neutral("Hello, I have a question about my {item}."),
)
ANGRY_TURNS: Final[tuple[tuple[Line, ...], ...]] = (
    (
        negative("My {item} arrived broken."),
        negative("The refund you promised is late."),
        negative("I'm disappointed, the {item} stopped working after a day."),
    ),
    (
        negative("I sent photos last week. This is frustrating and unacceptable."),
        negative("I'm fed up, this is the worst delivery so far."),
        negative("Nobody replied to my email, which is unacceptable."),
    ),
    (
        negative("Still waiting, nobody answers, this is ridiculous."),
        negative("This is awful, I'm angry and nobody takes responsibility."),
        negative("Unacceptable. I'm sick of this and still waiting for an answer."),
    ),
)
ANGRY_QUITS: Final = (
    negative(
        "This is the worst, most useless service ever. I'm furious and I'm closing my account.",
        "churn",
    ),
    negative(
        "Terrible, ridiculous, unacceptable. I'm closing my account today, I'm fed up.",
        "churn",
    ),
    negative(
        "You are useless and I'm furious about this awful mess. I'm closing my account.",
        "churn",
    ),
)
AGENT_CALMING: Final = (
    neutral("I'm sorry to hear that. Could you send a photo of the {item}?"),
    neutral("I understand. Let me pass this to our returns team."),
    neutral("I apologise for the delay. Someone will contact you within 24 hours."),
    neutral("I see your case. I have raised its priority."),
    neutral("Let me check with my supervisor."),
)

SLOTS: Final[Mapping[str, tuple[str, ...]]] = {
    "conference": ("Global Tech", "Morgan Street", "Northbridge Investor", "Harbor Capital"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
    "quarter": ("Q1", "Q2", "Q3", "Q4", "first-quarter", "fourth-quarter"),
    "month": ("January", "February", "March", "April", "October", "November"),
    "person": ("Dana Whitfield", "Marco Silva", "Priya Raman", "Jonas Berg", "Ana Costa"),
    "role": ("financial", "operating", "technology", "marketing"),
    "city": ("Lisbon", "Austin", "Singapore", "Toronto", "Dublin", "Osaka"),
    "cents": ("12", "18", "25", "40"),
    "segment": ("cloud", "payments", "retail", "logistics", "devices", "advertising"),
    "partner": ("Northwind", "Bluepeak Systems", "Orion Freight", "Harbor Health"),
    "firm": ("Calder & Co", "Westbrook Research", "Ledgerline", "Pinecrest Securities"),
    "pct": ("6", "8", "11", "14", "19"),
    "part": ("lid", "handle", "switch", "base", "cable", "button", "casing"),
    "color": ("matte black", "white", "sage green", "steel grey"),
    "street": ("Harbour Road", "Elm Street", "Mill Lane", "Station Avenue"),
    "number": ("4", "17", "23", "108"),
    "date": ("3rd", "9th", "14th", "21st"),
    "email": ("the one ending in @example.com", "my work address"),
    "feature": ("international calls", "extra storage", "priority support", "family sharing"),
    "plan": ("Plus", "Family", "Pro"),
}

TICKERS: Final = (
    "ACME", "NOVA", "ORBX", "ZENT", "KALO", "VYRA", "HELX", "QUOR", "BRIX", "TALN", "MERI",
    "DYNO", "PYRA", "SOLV", "GRAV", "LYNX", "CIRQ", "AXIO", "FERN", "OPAL", "RIVO", "STRA",
    "VANT", "WELO", "YOND", "ZYLO", "CRUX", "DELV", "FLUX", "GLIM", "HALO", "JUNO", "KYRA",
    "MIRA", "NEXA",
)  # fmt: skip
NEWS_CALM: Final[Mix] = ((NEWS_NEUTRAL, 14), (NEWS_POSITIVE, 5), (NEWS_NEGATIVE, 1))
# An incident's own entity: no negative background (a fraud story's negative share jumps from
# 0), or nothing but neutral headlines (a rally's net sentiment moves from 0).
NEWS_NO_NEGATIVE: Final[Mix] = ((NEWS_NEUTRAL, 7), (NEWS_POSITIVE, 3))
NEWS_FLAT: Final[Mix] = ((NEWS_NEUTRAL, 1),)
REVIEWS_CALM: Final[Mix] = ((REVIEW_POSITIVE, 12), (REVIEW_NEUTRAL, 6), (REVIEW_NEGATIVE, 2))
REVIEWS_NO_NEGATIVE: Final[Mix] = ((REVIEW_POSITIVE, 13), (REVIEW_NEUTRAL, 7))

PRODUCT_FAMILIES: Final = (
    "kettle", "toaster", "blender", "heater", "airfryer", "hairdryer", "vacuum", "charger",
    "lamp", "speaker", "grinder", "juicer",
)  # fmt: skip
PUBLISHERS: Final = ("Market Wire", "Daily Ledger", "FinBeat", "Street Journal", "Ticker Times")
CHANNELS: Final = ("web", "app", "web", "web")


def tickers() -> Iterator[str]:
    """Ticker symbols: the named ones, then codes with an X third (no such English word)."""
    yield from TICKERS
    letters = string.ascii_uppercase
    for a, b, c in itertools.product(letters, letters, letters):
        yield f"{a}{b}X{c}"
    for a, b, c, d in itertools.product(letters, letters, letters, letters):
        yield f"{a}{b}X{c}{d}"


def products() -> Iterator[str]:
    """Product ids like kettle-k200: a family, its initial and a model number."""
    for number in itertools.count(200, 50):
        for family in PRODUCT_FAMILIES:
            yield f"{family}-{family[0]}{number}"


# --- generation ------------------------------------------------------------------------------


BURST_TEXTS: Final[Mapping[IncidentKind, str]] = {
    "fraud_story": "negative headlines about fraud, charges and an SEC probe",
    "recall_wave": "negative reviews about burns, fire, overheating and a recall",
    "rally": "positive headlines (record earnings, upgrades) on an all-neutral ticker",
}


@dataclass(frozen=True)
class _Burst:
    """An incident's messages in one window of one entity."""

    kind: IncidentKind
    window: int
    lines: Lines


@dataclass(frozen=True)
class _Plan:
    """Who gets what: entities per source and which of them carry an incident."""

    window_s: int
    windows: int
    warmup: int
    per_kind: int
    tickers: int
    products: int
    conversations: int


class _Builder:
    def __init__(self, seed: int, tenant: str, origin: datetime, plan: _Plan) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.tenant = tenant
        self.origin = origin
        self.plan = plan
        self.counters: dict[Source, int] = dict.fromkeys(SOURCES, 0)
        self.messages: list[InputMessage] = []
        self.intent: dict[str, Intent] = {}
        self.incidents: list[Incident] = []

    # one message

    def add(
        self,
        source: Source,
        line: Line,
        at_ms: int,
        slots: Mapping[str, str],
        *,
        entity: str | None = None,
        meta: dict[str, JsonValue] | None = None,
        chat: tuple[str, Speaker, int] | None = None,
    ) -> str:
        number = self.counters[source]
        self.counters[source] = number + 1
        message_id = f"{self.tenant}-{source}-{self.seed}-{number:07d}"
        conversation_id, speaker, turn = chat if chat is not None else (None, None, None)
        self.messages.append(
            InputMessage(
                id=message_id,
                source=source,
                text=line.text.format(**slots),
                tenant=self.tenant,
                entity=entity,
                ts=self.origin + timedelta(milliseconds=at_ms),
                meta=meta or {},
                conversation_id=conversation_id,
                speaker=speaker,
                turn=turn,
            )
        )
        self.intent[message_id] = line.intent
        return message_id

    def slots(self, **fixed: str) -> dict[str, str]:
        return {name: self.rng.choice(values) for name, values in SLOTS.items()} | fixed

    def window_ms(self, index: int) -> tuple[int, int]:
        """Where messages of window `index` may fall, clear of its edges."""
        length = self.plan.window_s * 1000
        return index * length + 200, (index + 1) * length - 200

    def times(self, index: int, count: int) -> list[int]:
        low, high = self.window_ms(index)
        return sorted(self.rng.sample(range(low, high), count))

    # news and reviews

    def entity_stream(
        self, source: Source, entity: str, background: Mix, burst: _Burst | None
    ) -> None:
        """Background in every window (lines drawn by weight), plus the incident's burst."""
        pools = [pool for pool, _ in background]
        weights = [weight for _, weight in background]
        for index in range(self.plan.windows):
            size = 0
            if burst is not None and burst.window == index:
                size = self.rng.randint(*INCIDENT_MESSAGES)
            times = self.times(index, self.rng.choice(BACKGROUND_PER_WINDOW) + size)
            in_burst = set(self.rng.sample(range(len(times)), size))
            burst_ids = []
            for position, at_ms in enumerate(times):
                if burst is not None and position in in_burst:
                    line = self.rng.choice(burst.lines)
                else:
                    line = self.rng.choice(self.rng.choices(pools, weights)[0])
                message_id = self.add(
                    source, line, at_ms, self.entity_slots(source, entity),
                    entity=entity, meta=self.meta(source, line),
                )  # fmt: skip
                if position in in_burst:
                    burst_ids.append(message_id)
            if burst is not None and size:
                what = f"{size} {BURST_TEXTS[burst.kind]} in one window"
                self.record(burst.kind, source, entity, index, tuple(burst_ids), what)

    def entity_slots(self, source: Source, entity: str) -> dict[str, str]:
        if source == "news":
            return self.slots(ticker=f"${entity}")
        return self.slots(product=entity, item=entity.split("-")[0])

    def meta(self, source: Source, line: Line) -> dict[str, JsonValue]:
        if source == "news":
            return {"publisher": self.rng.choice(PUBLISHERS)}
        ratings = {"negative": (1, 2), "neutral": (3,), "positive": (4, 5)}
        return {"rating": self.rng.choice(ratings[line.intent.sentiment])}

    def record(
        self,
        kind: IncidentKind,
        source: Source,
        subject: str,
        window: int,
        message_ids: tuple[str, ...],
        what: str,
    ) -> None:
        start = self.origin + timedelta(seconds=window * self.plan.window_s)
        self.incidents.append(
            Incident(
                kind=kind,
                tenant=self.tenant,
                source=source,
                subject=subject,
                window_start=start,
                description=f"{subject} from {start:%H:%M}Z: {what}",
                message_ids=message_ids,
            )
        )

    # chats

    def conversation(self, number: int, escalating: bool) -> None:
        conversation_id = f"conv-{self.seed}-{number:05d}"
        slots = self.slots(
            item=self.rng.choice(PRODUCT_FAMILIES), order=f"#{self.rng.randrange(10**5, 10**6)}"
        )
        lines = self.angry_lines() if escalating else self.polite_lines()
        assert len(lines) <= MAX_CHAT_TURNS, "a conversation too long for its rules"
        window_ms = self.plan.window_s * 1000
        earliest = self.plan.warmup * window_ms if escalating else 0
        first_ms = self.rng.randrange(earliest, self.plan.windows * window_ms - MAX_CHAT_MS)
        meta: dict[str, JsonValue] = {"channel": self.rng.choice(CHANNELS)}
        ids = []
        at_ms = first_ms
        for turn, (speaker, line) in enumerate(lines, start=1):
            chat = (conversation_id, speaker, turn)
            ids.append(self.add("chats", line, at_ms, slots, meta=dict(meta), chat=chat))
            at_ms += self.rng.randint(*TURN_GAP_MS)
        if escalating:
            angry = sum(1 for speaker, _ in lines if speaker == "customer")
            what = f"{angry} customer turns, each angrier, ending with closing the account"
            window = first_ms // window_ms
            self.record("escalating_chat", "chats", conversation_id, window, tuple(ids), what)

    def polite_lines(self) -> list[tuple[Speaker, Line]]:
        topic = self.rng.choice(CHAT_TOPICS)
        return [(speaker, self.rng.choice(options)) for speaker, options in topic]

    def angry_lines(self) -> list[tuple[Speaker, Line]]:
        customer: list[Line] = []
        if self.rng.random() < 0.5:
            customer.append(self.rng.choice(ANGRY_OPENERS))
        customer += [self.rng.choice(level) for level in ANGRY_TURNS]
        customer.append(self.rng.choice(ANGRY_QUITS))
        lines: list[tuple[Speaker, Line]] = []
        agent = self.rng.sample(AGENT_CALMING, len(customer) - 1)
        for i, line in enumerate(customer):
            lines.append(("customer", line))
            if i < len(agent):
                lines.append(("agent", agent[i]))
        return lines


def _plan(messages: int, window_s: int, warmup_windows: int) -> _Plan:
    if messages < 1 or window_s < 1 or warmup_windows < 1:
        raise ValueError("messages, window_s and warmup_windows must be at least 1")
    if window_s < MIN_WINDOW_S:
        raise ValueError(f"window_s must be at least {MIN_WINDOW_S} (chats would get baselines)")
    windows = warmup_windows + WINDOWS_AFTER_WARMUP
    per_kind = max(1, round(messages / MESSAGES_PER_INCIDENT_SET))
    per_entity = windows * sum(BACKGROUND_PER_WINDOW) / len(BACKGROUND_PER_WINDOW)
    return _Plan(
        window_s=window_s,
        windows=windows,
        warmup=warmup_windows,
        per_kind=per_kind,
        # Incident entities are distinct, and at least one calm entity stays beside them.
        tickers=max(2 * per_kind + 1, round(messages * SOURCE_SHARE["news"] / per_entity)),
        products=max(per_kind + 1, round(messages * SOURCE_SHARE["reviews"] / per_entity)),
        conversations=max(per_kind + 1, round(messages * SOURCE_SHARE["chats"] / MEAN_CHAT_TURNS)),
    )


def generate(
    *,
    seed: int = 7,
    messages: int = 2000,
    tenant: str = "demo",
    start: datetime = DEFAULT_START,
    window_s: int = 60,
    warmup_windows: int = 8,
) -> Workload:
    """About `messages` messages, sorted by time, with one incident of each kind per 2000.

    The same arguments give the same workload, byte for byte. The timeline starts at the
    first window boundary at or after `start` and lasts `warmup_windows` + 10 windows.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    plan = _plan(messages, window_s, warmup_windows)
    epoch = math.ceil(start.timestamp() / window_s) * window_s
    builder = _Builder(seed, tenant, datetime.fromtimestamp(epoch, UTC), plan)
    rng = builder.rng

    def incident_window() -> int:
        return rng.randrange(plan.warmup, plan.windows - 1)

    ticker_names = list(itertools.islice(tickers(), plan.tickers))
    chosen = rng.sample(ticker_names, 2 * plan.per_kind)
    fraud, rally = set(chosen[: plan.per_kind]), set(chosen[plan.per_kind :])
    for ticker in ticker_names:
        if ticker in fraud:
            burst = _Burst("fraud_story", incident_window(), FRAUD_HEADLINES)
            builder.entity_stream("news", ticker, NEWS_NO_NEGATIVE, burst)
        elif ticker in rally:
            burst = _Burst("rally", incident_window(), RALLY_HEADLINES)
            builder.entity_stream("news", ticker, NEWS_FLAT, burst)
        else:
            builder.entity_stream("news", ticker, NEWS_CALM, None)

    product_ids = list(itertools.islice(products(), plan.products))
    recalls = set(rng.sample(product_ids, plan.per_kind))
    for product in product_ids:
        if product in recalls:
            burst = _Burst("recall_wave", incident_window(), RECALL_REVIEWS)
            builder.entity_stream("reviews", product, REVIEWS_NO_NEGATIVE, burst)
        else:
            builder.entity_stream("reviews", product, REVIEWS_CALM, None)

    escalating = set(rng.sample(range(plan.conversations), plan.per_kind))
    for number in range(plan.conversations):
        builder.conversation(number, number in escalating)

    ordered = sorted(builder.messages, key=lambda m: (m.ts, m.id))
    incidents = sorted(builder.incidents, key=lambda i: (i.window_start, i.kind, i.subject))
    return Workload(
        messages=ordered,
        expected=frozenset(alert for incident in incidents for alert in incident.expected),
        incidents=incidents,
        intent=builder.intent,
    )


# --- files -----------------------------------------------------------------------------------


def write_jsonl(workload: Workload, folder: Path) -> dict[Source, Path]:
    """One `<source>.jsonl` per source (in time order), one message per line."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[Source, Path] = {}
    for source, messages in workload.by_source().items():
        path = folder / f"{source}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            handle.writelines(message.model_dump_json() + "\n" for message in messages)
        paths[source] = path
    return paths


def expected_json(workload: Workload) -> str:
    """The expected alerts and the incidents behind them, as stable, sorted JSON."""
    counts = {source: len(messages) for source, messages in workload.by_source().items()}
    document = {
        "messages": len(workload.messages),
        "by_source": counts,
        "expected": [
            alert.as_dict()
            for alert in sorted(
                workload.expected, key=lambda a: (a.tenant, a.source, a.subject, a.kind)
            )
        ],
        "incidents": [incident.as_dict() for incident in workload.incidents],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def read_expected(text: str) -> frozenset[ExpectedAlert]:
    """The expected set back from `expected_json`'s text (for the ledger)."""
    return frozenset(ExpectedAlert(**alert) for alert in json.loads(text)["expected"])
