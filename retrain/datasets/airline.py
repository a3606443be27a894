"""Twitter US Airline Sentiment: tweets to six US airlines' customer-service accounts.

Source "chats": these are customers writing to a support account, the nearest of our
sources to a support chat turn.

Sentiment: airline_sentiment as is (negative/neutral/positive).

Risks: only service_outage is vouched for; the data labels nothing about fraud, churn,
toxicity and the rest, so those stay unknown. `negativereason` is one reason per negative
tweet, chosen by the annotator:
- "Cancelled Flight", "Late Flight" -> service_outage True: the service did not run as sold,
  our proxy for an outage (the data README suggests it; no outage set exists).
- "Can't Tell", or a reason we do not know -> unknown.
- every other reason (Customer Service Issue, Lost Luggage, Damaged Luggage - a bag, not
  product safety -, Bad Flight, Flight Booking Problems, Flight Attendant Complaints,
  longlines), and neutral/positive tweets -> False, BUT only when the text has no outage
  cue (cancel, delay, late, stranded, "website down", ...): a single primary reason does
  not rule out a second complaint ("website crashed" filed under Customer Service
  Issue), and neutral tweets often ask "is my flight cancelled?". Those stay unknown.

Quirk repaired: the published CSV had a find-and-replace run over the tweet texts that
turned every "cancel" into "Cancelled Flight", "late" into "Late Flight" and "booking"
into "Flight Booking Problems" ("Cancelled Flightled", "reFlight Booking Problems").
Left in, the label names would leak into the text; since a genuine occurrence would itself
have been expanded, each occurrence is reverted to the lowercase original word.
HTML entities from the Twitter API are unescaped.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Final

from retrain.datasets.base import Dataset
from retrain.datasets.reading import Collector, decode_lines, read_csv_records, require_file
from tonewatch.contracts import Risk, Sentiment

NAME: Final = "airline"
LICENCE: Final = "CC BY-NC-SA 4.0 (non-commercial)"
CSV_PATH: Final = "airline_twitter_sentiment/tweets.csv"
SENTIMENTS: Final[dict[str, Sentiment]] = {
    "negative": "negative",
    "neutral": "neutral",
    "positive": "positive",
}
OUTAGE_REASONS: Final = frozenset({"Cancelled Flight", "Late Flight"})
OTHER_REASONS: Final = frozenset(
    {
        "Customer Service Issue",
        "Lost Luggage",
        "Damaged Luggage",
        "Bad Flight",
        "Flight Booking Problems",
        "Flight Attendant Complaints",
        "longlines",
    }
)
# Words that make "no outage here" unsafe to claim for a tweet without an outage reason.
OUTAGE_CUE: Final = re.compile(
    r"\b(cancel\w*|delay\w*|late|outage\w*|stranded|grounded|mechanical|crash\w*|glitch\w*"
    r"|offline|not working|broken|(website|site|app|system)s? (is |are |was |went )?down)\b",
    re.IGNORECASE,
)
# What the uploader's find-and-replace turned words into, and the words it replaced.
TEXT_REPAIRS: Final[dict[str, str]] = {
    "Cancelled Flight": "cancel",
    "Late Flight": "late",
    "Flight Booking Problems": "booking",
}
_REPAIR = re.compile("|".join(re.escape(k) for k in TEXT_REPAIRS))


def repair_text(text: str) -> str:
    """Undo the uploader's label-name replacement, and the Twitter API's HTML escaping."""
    return html.unescape(_REPAIR.sub(lambda m: TEXT_REPAIRS[m.group(0)], text))


def service_outage(sentiment: Sentiment, reason: str, text: str) -> bool | None:
    """True/False when the annotation supports it, None when it cannot say."""
    reason = reason.strip()
    if sentiment == "negative" and reason in OUTAGE_REASONS:
        return True
    if sentiment == "negative" and reason not in OTHER_REASONS:
        return None  # "Can't Tell", no reason given, or a reason we do not know
    return None if OUTAGE_CUE.search(text) else False


def load(data_dir: Path) -> Dataset:
    path = require_file(data_dir / CSV_PATH, NAME)
    out = Collector(NAME, source="chats")
    lines = decode_lines(path.read_bytes(), NAME)
    columns = ("airline_sentiment", "negativereason", "text")
    for row in read_csv_records(lines, columns, out.report):
        sentiment = SENTIMENTS.get(row["airline_sentiment"].strip().lower())
        if sentiment is None:
            out.skip("unknown label")
            continue
        text = repair_text(row["text"])
        outage = service_outage(sentiment, row["negativereason"], text)
        risks: dict[Risk, bool] = {} if outage is None else {"service_outage": outage}
        out.add(text, sentiment, risks)
    return out.build(LICENCE)
