"""UCI Sentiment Labelled Sentences (Kotzias et al. 2015): Amazon, Yelp and IMDB sentences.

One Dataset per site - "uci_amazon" (phones), "uci_yelp" (restaurants), "uci_imdb"
(movies) - because they are different domains and results are reported per dataset.
All three are reviews, hence source "reviews".

Mapping: 1 -> positive, 0 -> negative. The authors picked clearly polar sentences, so
there is no neutral class. No risk labels: `risks` is empty.

Quirks: `sentence<TAB>label` lines; the uploader added a `sentence<TAB>score` header line
(skipped as "header line"); the IMDB file has Windows-1252 punctuation stored as C1
control characters (U+0085 for "…"), which clean_text repairs; lines are split on LF/CR
only, because U+0085 is a line break to str.splitlines().
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from retrain.datasets.base import Dataset
from retrain.datasets.reading import Collector, decode_lines, require_file
from tonewatch.contracts import Sentiment

LICENCE: Final = "CC BY 4.0"
FOLDER: Final = "uci_sentiment_labelled_sentences"
FILES: Final[dict[str, str]] = {
    "uci_amazon": f"{FOLDER}/amazon_cells_labelled.txt",
    "uci_yelp": f"{FOLDER}/yelp_labelled.txt",
    "uci_imdb": f"{FOLDER}/imdb_labelled.txt",
}
LABELS: Final[dict[str, Sentiment]] = {"0": "negative", "1": "positive"}
HEADER_LABEL: Final = "score"


def load_site(data_dir: Path, name: str) -> Dataset:
    """Load one site's file; `name` is a key of FILES."""
    path = require_file(data_dir / FILES[name], name)
    out = Collector(name, source="reviews")
    for line in decode_lines(path.read_bytes(), name):
        if not line.strip():
            out.skip("blank line")
            continue
        text, tab, label = line.rstrip("\r\n").rpartition("\t")
        label = label.strip()
        if not tab:
            out.skip("malformed line")
        elif label.lower() == HEADER_LABEL:
            out.skip("header line")
        elif label not in LABELS:
            out.skip("unknown label")
        else:
            out.add(text, LABELS[label])
    return out.build(LICENCE)


def _site_loader(name: str) -> Callable[[Path], Dataset]:
    def load(data_dir: Path) -> Dataset:
        return load_site(data_dir, name)

    load.__doc__ = f"Load {name} from {FILES[name]} under data_dir."
    return load


load_amazon = _site_loader("uci_amazon")
load_yelp = _site_loader("uci_yelp")
load_imdb = _site_loader("uci_imdb")
