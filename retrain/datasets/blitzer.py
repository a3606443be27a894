"""Multi-Domain Sentiment (Blitzer et al. 2007): Amazon reviews, books and dvd domains.

One Dataset per domain - "blitzer_books", "blitzer_dvd" - since results are reported per
dataset and the domains differ. Source "reviews".

Mapping: the star rating decides: 4-5 -> positive, 1-2 -> negative. The files are already
split by it (positive.review / negative.review); a review whose rating disagrees with its
file is skipped ("rating contradicts file"), and a 3-star review ("neutral rating") would
be too, because the authors left 3 stars out and we cannot tell its polarity. No neutral
class and no risk labels: `risks` is empty.

Text = title + ". " + review_text (just a space when the title already ends in . ! or ?),
because titles often carry the verdict ("Waste of money"). Long reviews are kept whole;
the model truncates.

Quirks: pseudo-XML, not well-formed (the uploader wrapped it in a <reviews> root, but
field text is not reliably escaped), so it is cut apart with string splits and regexes,
not an XML parser; entities such as &amp; are unescaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final

from retrain.datasets.base import Dataset
from retrain.datasets.reading import Collector, decode_lines, require_file
from tonewatch.contracts import Sentiment

LICENCE: Final = "academic use, no licence stated"
FOLDER: Final = "multi_domain_sentiment_blitzer2007"
DOMAINS: Final[dict[str, str]] = {"blitzer_books": "books", "blitzer_dvd": "dvd"}
# File name -> the polarity every review in it should have.
FILES: Final[dict[str, Sentiment]] = {
    "positive.review": "positive",
    "negative.review": "negative",
}
RATINGS: Final[dict[int, Sentiment]] = {
    1: "negative",
    2: "negative",
    4: "positive",
    5: "positive",
}
NEUTRAL_RATING: Final = 3


def field(block: str, tag: str) -> str | None:
    """The text inside <tag>...</tag> in one review block, or None when the tag is absent."""
    match = re.search(rf"<{tag}>(.*?)</{tag}>", block, re.DOTALL)
    return html.unescape(match.group(1)).strip() if match else None


def review_text(title: str | None, body: str) -> str:
    if not title:
        return body
    joiner = " " if title[-1] in ".!?" else ". "
    return title + joiner + body


def load_domain(data_dir: Path, name: str) -> Dataset:
    """Load one domain; `name` is a key of DOMAINS."""
    folder = data_dir / FOLDER / DOMAINS[name]
    paths = {file: require_file(folder / file, name) for file in FILES}
    out = Collector(name, source="reviews")
    for file, expected in FILES.items():
        text = "".join(decode_lines(paths[file].read_bytes(), name))
        for block in text.split("<review>")[1:]:
            body_end = block.find("</review>")
            if body_end < 0:
                out.skip("malformed review")
                continue
            block = block[:body_end]
            rating_text, body = field(block, "rating"), field(block, "review_text")
            try:
                rating = round(float(rating_text or ""))
            except ValueError:
                out.skip("malformed review")
                continue
            if rating == NEUTRAL_RATING:
                out.skip("neutral rating")
            elif rating not in RATINGS:
                out.skip("unknown label")
            elif RATINGS[rating] != expected:
                out.skip("rating contradicts file")
            else:
                out.add(review_text(field(block, "title"), body or ""), RATINGS[rating])
    return out.build(LICENCE)


def _domain_loader(name: str) -> Callable[[Path], Dataset]:
    def load(data_dir: Path) -> Dataset:
        return load_domain(data_dir, name)

    load.__doc__ = f"Load {name} from {FOLDER}/{DOMAINS[name]}/ under data_dir."
    return load


load_books = _domain_loader("blitzer_books")
load_dvd = _domain_loader("blitzer_dvd")
