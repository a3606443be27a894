"""Davidson et al. 2017: tweets labelled hate speech / offensive / neither (contains slurs).

Source "chats": short, informal messages written by people, which is what toxicity
shows up in among our sources (support chats), not news or reviews.

Mapping (majority of the crowd annotators, column `class`): 0 hate speech -> toxicity True,
1 offensive language -> toxicity True, 2 neither -> toxicity False. We alert on both,
so the hate/offensive distinction is not kept. Only toxicity is vouched for; sentiment
is None (an offensive tweet can be cheerful) and the other risks are unknown.

Quirks: HTML entities from the Twitter API (&amp;, &#128514;) are unescaped; "RT @user:"
prefixes and @mentions are kept - live chat text is as noisy, and the text would not be
the annotated text any more. Caveat for model cards: the labels are known to correlate
with African-American English (Davidson et al. 2019), which a model can pick up.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Final

from retrain.datasets.base import Dataset
from retrain.datasets.reading import Collector, decode_lines, read_csv_records, require_file

NAME: Final = "davidson"
LICENCE: Final = "MIT"
CSV_PATH: Final = "davidson_hate_offensive/labeled_data.csv"
TOXIC: Final[dict[str, bool]] = {
    "0": True,  # hate speech
    "1": True,  # offensive language
    "2": False,  # neither
}


def load(data_dir: Path) -> Dataset:
    path = require_file(data_dir / CSV_PATH, NAME)
    out = Collector(NAME, source="chats")
    lines = decode_lines(path.read_bytes(), NAME)
    for row in read_csv_records(lines, ("class", "tweet"), out.report):
        toxic = TOXIC.get(row["class"].strip())
        if toxic is None:
            out.skip("unknown label")
            continue
        out.add(html.unescape(row["tweet"]), None, {"toxicity": toxic})
    return out.build(LICENCE)
