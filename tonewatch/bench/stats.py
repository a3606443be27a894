"""Figures shared by the benchmarks and the fault harness."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def percentile(values: Sequence[float], q: float, digits: int = 1) -> float | None:
    """The q-th percentile, rounded; None (JSON null) when there is nothing to rank."""
    return round(float(np.percentile(values, q)), digits) if len(values) else None


def peak_rss_mb(pids: Sequence[int]) -> float | None:
    """Sum of the processes' peak resident memory (VmHWM), in MiB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return round(total / 1024, 1) if total else None
