"""`bench faults`: run the reliability suite (the tests of RELIABILITY.md) and report on it.

The suite is the pytest tests marked `reliability("<id>")`. This runs them in a child pytest
with TONEWATCH_RELIABILITY_REPORT set, so that each writes a JSON line with its verdict and
its figures (tests/conftest.py), then folds the lines into one row per RELIABILITY.md id.
It needs a source checkout (the tests are not part of the installed package).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

RELIABILITY_IDS: Final = (
    *(f"F{n}" for n in range(1, 9)),
    *(f"B{n}" for n in range(1, 5)),
    *(f"S{n}" for n in range(1, 6)),
    "M1",
    "M2",
)
REPORT_ENV: Final = "TONEWATCH_RELIABILITY_REPORT"
ONLY_ENV: Final = "TONEWATCH_RELIABILITY_ONLY"
COUNTS: Final = (
    "lost_messages", "missed_alerts", "dup_alerts_postgres", "dup_alerts_redis",
    "dup_alerts_topic", "dup_webhooks", "reprocessed",
)  # fmt: skip
DUP_ALERTS: Final = ("dup_alerts_postgres", "dup_alerts_redis", "dup_alerts_topic")
TIMINGS: Final = ("detect_s", "recover_s", "drain_s")
PHASES: Final = ("before", "during", "after")

Progress = Callable[[int, int], None]


class SuiteError(RuntimeError):
    """The suite could not run (no tests folder, or pytest itself failed to start)."""


def tests_dir() -> Path:
    found = Path(__file__).resolve().parents[2] / "tests"
    if not (found / "conftest.py").is_file():
        raise SuiteError(f"no test suite at {found}: `bench faults` runs from a source checkout")
    return found


def run_suite(
    only: Sequence[str] = (), on_progress: Progress | None = None
) -> tuple[list[dict[str, Any]], float]:
    """Run the reliability tests (those of `only`'s ids, or all); returns their rows and the
    suite's wall time in seconds."""
    root = tests_dir()
    env = {**os.environ, ONLY_ENV: ",".join(only)}
    argv = [sys.executable, "-m", "pytest", str(root), "-m", "reliability", "-p",
            "no:cacheprovider", "-q", "-rN", "--no-header"]  # fmt: skip
    collected = subprocess.run(
        [*argv, "--collect-only"], cwd=root.parent, env=env, capture_output=True, text=True
    )
    total = sum(1 for line in collected.stdout.splitlines() if "::" in line)
    if collected.returncode not in (0, 5) or not total:
        raise SuiteError(f"no reliability test collected:\n{collected.stdout[-2000:]}")
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.jsonl"
        report.touch()
        began = time.monotonic()
        child = subprocess.Popen(
            argv, cwd=root.parent, env={**env, REPORT_ENV: str(report)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert child.stdout is not None
        output = []
        for line in child.stdout:  # pytest's own output, kept for a failure's message
            output.append(line)
            if on_progress:
                on_progress(len(report.read_text().splitlines()), total)
        child.wait()
        rows = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    if not rows:
        raise SuiteError("the suite reported nothing:\n" + "".join(output)[-3000:])
    return rows, time.monotonic() - began


def summarize(rows: Iterable[dict[str, Any]], only: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per RELIABILITY.md id, in the plan's order: its tests' verdicts and figures.

    Counts add up over an id's tests; timings and latencies take the worst. An id without a
    test (or whose tests were all skipped) does not pass.
    """
    by_id: dict[str, list[dict[str, Any]]] = {rid: [] for rid in only or RELIABILITY_IDS}
    for row in rows:
        for rid in row["ids"]:
            if rid in by_id or not only:
                by_id.setdefault(rid, []).append(row)
    table = []
    for rid, tests in by_id.items():
        ran = [t for t in tests if t["outcome"] != "skipped"]
        figures = [t["figures"] for t in ran]
        line: dict[str, Any] = {
            "id": rid,
            "passed": bool(ran) and all(t["outcome"] == "passed" for t in ran),
            "tests": [t["test"] for t in tests],
            "skipped": len(tests) - len(ran),
            "seconds": round(sum(t["seconds"] for t in tests), 1),
        }
        for name in COUNTS:
            values = [f[name] for f in figures if f.get(name) is not None]
            line[name] = sum(values) if values else None
        for name in TIMINGS:
            values = [f[name] for f in figures if f.get(name) is not None]
            line[name] = max(values) if values else None
        for name in ("p50_ms", "p99_ms"):
            line[name] = {
                phase: max(
                    (f[name][phase] for f in figures if f.get(name) and f[name].get(phase)),
                    default=None,
                )
                for phase in PHASES
            }
        line["figures"] = figures
        table.append(line)
    return table


COLUMNS: Final = (
    "id", "verdict", "lost messages", "missed alerts", "dup alerts pg / redis / topic",
    "dup webhooks", "reprocessed", "detect s", "recover s", "drain s",
    "p99 ms before / during / after", "tests", "s",
)  # fmt: skip


def cells(row: dict[str, Any], passed: str = "pass", failed: str = "FAIL") -> list[str]:
    """One summarized row as the texts of COLUMNS (the terminal and docs/reliability.md tables)."""

    def show(value: object) -> str:
        return "-" if value is None else str(value)

    return [
        row["id"],
        passed if row["passed"] else failed,
        show(row["lost_messages"]),
        show(row["missed_alerts"]),
        " / ".join(show(row[name]) for name in DUP_ALERTS),
        *(show(row[name]) for name in ("dup_webhooks", "reprocessed", *TIMINGS)),
        " / ".join(show(row["p99_ms"][phase]) for phase in PHASES),
        str(len(row["tests"])),
        str(row["seconds"]),
    ]


def markdown(table: Sequence[dict[str, Any]]) -> str:
    """The table of the latest run in docs/reliability.md."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(row, failed="**FAIL**")) + " |" for row in table]
    return "\n".join(lines)
