"""Dataset loaders: each turns one public dataset (or our seed set) into Examples.

Every loader takes the shared data folder (../shared/data, outside the repository) and
returns a Dataset in our label space, with its licence and a LoadReport of what it skipped.
The seed set needs no files, so training and tests work without the shared folder.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from retrain.datasets import (
    airline,
    banking77,
    blitzer,
    cfpb,
    davidson,
    financial_phrasebank,
    seed,
    twitter_financial_news,
    uci_sentences,
)
from retrain.datasets.base import Dataset

DEFAULT_DATA_DIR: Final = Path("../shared/data")

LOADERS: Final[dict[str, Callable[[Path], Dataset]]] = {
    financial_phrasebank.NAME: financial_phrasebank.load,
    twitter_financial_news.NAME: twitter_financial_news.load,
    "uci_amazon": uci_sentences.load_amazon,
    "uci_yelp": uci_sentences.load_yelp,
    "uci_imdb": uci_sentences.load_imdb,
    "blitzer_books": blitzer.load_books,
    "blitzer_dvd": blitzer.load_dvd,
    airline.NAME: airline.load,
    banking77.NAME: banking77.load,
    cfpb.NAME: cfpb.load,
    davidson.NAME: davidson.load,
    seed.NAME: seed.load,
    # The sentences on which at least 75% of annotators agreed: a subset of the default
    # (50%) set, so it is for evaluation only (see EVALUATION_ONLY).
    "financial_phrasebank_75agree": functools.partial(financial_phrasebank.load, agreement="75"),
}

# Subsets of other datasets: evaluated (their test split is held out from training, since
# splits hash the text), never trained on twice.
EVALUATION_ONLY: Final = frozenset({"financial_phrasebank_75agree"})

# The files each loader reads, relative to the data folder; the seed set reads none.
FILES: Final[dict[str, tuple[str, ...]]] = {
    financial_phrasebank.NAME: (financial_phrasebank.ZIP_PATH,),
    twitter_financial_news.NAME: (twitter_financial_news.CSV_PATH,),
    **{name: (path,) for name, path in uci_sentences.FILES.items()},
    **{
        name: tuple(f"{blitzer.FOLDER}/{domain}/{file}" for file in blitzer.FILES)
        for name, domain in blitzer.DOMAINS.items()
    },
    airline.NAME: (airline.CSV_PATH,),
    banking77.NAME: (banking77.CSV_PATH,),
    cfpb.NAME: (cfpb.CSV_PATH,),
    davidson.NAME: (davidson.CSV_PATH,),
    seed.NAME: (),
    "financial_phrasebank_75agree": (financial_phrasebank.ZIP_PATH,),
}


def available(data_dir: Path) -> list[str]:
    """Names of the datasets whose files are all present (always includes "seed")."""
    return [name for name in LOADERS if all((data_dir / file).is_file() for file in FILES[name])]


def trainable(data_dir: Path) -> list[str]:
    """The available datasets that training uses: all but the evaluation-only subsets."""
    return [name for name in available(data_dir) if name not in EVALUATION_ONLY]


def load(name: str, data_dir: Path) -> Dataset:
    """Load one dataset by name; KeyError for an unknown name, FileNotFoundError if absent."""
    if name not in LOADERS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(LOADERS)}")
    return LOADERS[name](data_dir)


def load_all(data_dir: Path, names: Iterable[str] | None = None) -> list[Dataset]:
    """Load `names` (default: every available dataset), in registry order."""
    wanted = available(data_dir) if names is None else list(names)
    return [load(name, data_dir) for name in wanted]
