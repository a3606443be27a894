"""Financial PhraseBank v1.0 (Malo et al. 2014): sentences from financial news.

Read straight from the original zip, so the shared copy stays byte for byte as published.
Each file holds the sentences on which at least that share of annotators agreed
(50, 66, 75 or All = 100 %), one per line as `sentence@label`.

Mapping: the labels are already ours (negative/neutral/positive). They were given "from
the view point of an investor", which is the sense of sentiment tonewatch reports for
news. The data says nothing about risks, so `risks` is empty (all unknown).

Quirks: the files are latin-1 (decoded per line, UTF-8 first); a sentence may contain '@',
so the label is what follows the LAST '@'; company names carry old mojibake
(e.g. "Sepp+ñl+ñ" for Seppälä), kept as is because repairing it would be guesswork.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Final, Literal

from retrain.datasets.base import Dataset
from retrain.datasets.reading import Collector, decode_lines, require_file
from tonewatch.contracts import Sentiment

Agreement = Literal["50", "66", "75", "All"]

NAME: Final = "financial_phrasebank"
LICENCE: Final = "CC BY-NC-SA 3.0 (non-commercial)"
ZIP_PATH: Final = "financial_phrasebank/FinancialPhraseBank-v1.0.zip"
LABELS: Final[dict[str, Sentiment]] = {
    "negative": "negative",
    "neutral": "neutral",
    "positive": "positive",
}


def dataset_name(agreement: Agreement) -> str:
    """50 % agreement is the default set; the stricter subsets get names of their own."""
    return NAME if agreement == "50" else f"{NAME}_{agreement.lower()}agree"


def load(data_dir: Path, agreement: Agreement = "50") -> Dataset:
    name = dataset_name(agreement)
    zip_path = require_file(data_dir / ZIP_PATH, name)
    member = f"Sentences_{agreement}Agree.txt"
    with zipfile.ZipFile(zip_path) as archive:
        # Skip the __MACOSX/._* resource forks that the zip also carries.
        found = [
            n
            for n in archive.namelist()
            if n.rsplit("/", 1)[-1] == member and not n.startswith("__MACOSX/")
        ]
        if not found:
            raise FileNotFoundError(f"{name}: {zip_path} has no {member}")
        data = archive.read(found[0])

    out = Collector(name, source="news")
    for line in decode_lines(data, name):
        line = line.strip()
        if not line:
            out.skip("blank line")
            continue
        text, at, label = line.rpartition("@")
        if not at:
            out.skip("malformed line")
            continue
        sentiment = LABELS.get(label.strip().lower())
        if sentiment is None:
            out.skip("unknown label")
            continue
        out.add(text, sentiment)
    return out.build(LICENCE)
