"""Twitter Financial News Sentiment: finance tweets and headlines, `text,label`.

Mapping: 0 bearish -> negative, 1 bullish -> positive, 2 neutral -> neutral. Bearish and
bullish are market sentiment, the same investor's view Financial PhraseBank takes, so they
line up with our negative/positive for news. The texts are ticker-style headlines
("$GM - GM loses a bull"), hence source "news". No risk labels: `risks` is empty.

Quirks: quoted fields may span lines; texts carry HTML entities from the Twitter API
(&amp;, &gt;), which are unescaped; t.co links are kept, since live headlines have them too.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Final

from retrain.datasets.base import Dataset
from retrain.datasets.reading import Collector, decode_lines, read_csv_records, require_file
from tonewatch.contracts import Sentiment

NAME: Final = "twitter_financial_news"
LICENCE: Final = "MIT"
CSV_PATH: Final = "twitter_financial_news_sentiment/sent_train.csv"
LABELS: Final[dict[str, Sentiment]] = {
    "0": "negative",  # bearish
    "1": "positive",  # bullish
    "2": "neutral",
}


def load(data_dir: Path) -> Dataset:
    path = require_file(data_dir / CSV_PATH, NAME)
    out = Collector(NAME, source="news")
    lines = decode_lines(path.read_bytes(), NAME)
    for row in read_csv_records(lines, ("text", "label"), out.report):
        sentiment = LABELS.get(row["label"].strip())
        if sentiment is None:
            out.skip("unknown label")
            continue
        out.add(html.unescape(row["text"]), sentiment)
    return out.build(LICENCE)
