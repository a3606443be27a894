"""The mechanics every loader shares: reading untrusted files into clean, unique Examples.

The public datasets arrive with odd encodings, stray header lines, C1 control characters
from old Windows text and repeated rows. These helpers decode and clean text the same way
for every dataset, and make every row that does not become an Example show up, with a
reason, in the dataset's LoadReport.
"""

from __future__ import annotations

import csv
import logging
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from retrain.datasets.base import Dataset, Example, LoadReport
from tonewatch.contracts import Risk, Sentiment, Source

log = logging.getLogger(__name__)

# Characters U+0080-U+009F are C1 controls, which real text never contains: in these files
# they are Windows-1252 punctuation (ellipsis, dashes, curly quotes) that was decoded as
# latin-1 somewhere upstream.
_C1_AS_CP1252 = {
    code: bytes([code]).decode("cp1252")
    for code in range(0x80, 0xA0)
    if code not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)  # undefined in cp1252
}


def require_file(path: Path, dataset: str) -> Path:
    """`path`, or a FileNotFoundError that says which dataset needs it and where to get it."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{dataset}: missing {path}. The public datasets live outside the repository, "
            "in ../shared/data (see its README.md); pass that folder as data_dir."
        )
    return path


def decode_lines(data: bytes, dataset: str, fallback: str = "latin-1") -> list[str]:
    """Split bytes into lines (ends kept) and decode each as UTF-8, else as `fallback`.

    Splitting happens on bytes, so only CR/LF end lines: str.splitlines() would also break
    on U+0085 and U+2028, which occur inside sentences. Decoding per line keeps one bad
    byte from forcing a whole file into the fallback; how many lines fell back is logged.
    """
    lines: list[str] = []
    fell_back = 0
    for raw in data.splitlines(keepends=True):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(raw.decode(fallback, errors="replace"))
            fell_back += 1
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    if fell_back:
        log.info("%s: %d line(s) were not UTF-8; decoded as %s", dataset, fell_back, fallback)
    return lines


def clean_text(text: str) -> str:
    """Repair C1 punctuation, drop other control characters, collapse whitespace."""
    text = text.translate(_C1_AS_CP1252)
    text = "".join(
        ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf")
    )
    return " ".join(text.split())


def read_csv_records(
    lines: Iterable[str], columns: Iterable[str], report: LoadReport
) -> Iterator[dict[str, str]]:
    """Yield each CSV row as {column: value}, skipping (and counting) rows that are not rows.

    The first row must be a header holding every name in `columns`; a file without them
    is a different format, not a bad row, so that raises ValueError.
    """
    reader = csv.reader(lines)
    header = next(reader, None)
    missing = set(columns) - set(header or ())
    if header is None or missing:
        raise ValueError(f"{report.dataset}: CSV header {header} lacks {sorted(missing)}")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            report.skip("malformed row")
            continue
        if not any(field.strip() for field in row):
            report.skip("blank line")
        elif len(row) != len(header):
            report.skip("malformed row")
        else:
            yield dict(zip(header, row, strict=True))


class Collector:
    """Accumulates one dataset's Examples: cleans text, drops empty and repeated texts.

    Repeats are dropped because they would leak between train and test splits and weigh
    some texts double. The first occurrence wins; a repeat that carries different labels
    is counted apart, since it says the labels of that text are contested.
    """

    def __init__(self, dataset: str, source: Source) -> None:
        self.dataset = dataset
        self.source = source
        self.report = LoadReport(dataset=dataset)
        self.examples: list[Example] = []
        self._labels_by_text: dict[str, tuple[Sentiment | None, Mapping[Risk, bool]]] = {}

    def skip(self, reason: str) -> None:
        self.report.skip(reason)

    def add(
        self,
        text: str,
        sentiment: Sentiment | None,
        risks: Mapping[Risk, bool] | None = None,
        source: Source | None = None,
    ) -> bool:
        """Add one example; False (and a counted reason) when it is empty or a repeat."""
        text = clean_text(text)
        labels = (sentiment, dict(risks or {}))
        if not text:
            self.report.skip("empty text")
            return False
        if text in self._labels_by_text:
            same = self._labels_by_text[text] == labels
            self.report.skip("duplicate" if same else "duplicate with conflicting labels")
            return False
        self._labels_by_text[text] = labels
        self.examples.append(
            Example(
                text=text,
                dataset=self.dataset,
                source=source or self.source,
                sentiment=sentiment,
                risks=labels[1],
            )
        )
        self.report.loaded += 1
        return True

    def build(self, licence: str) -> Dataset:
        return Dataset(
            name=self.dataset, licence=licence, examples=self.examples, report=self.report
        )
