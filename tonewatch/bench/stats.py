"""Figures shared by the benchmarks and the fault harness."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentile(values: Sequence[float], q: float, digits: int = 1) -> float | None:
    """The q-th percentile, rounded; None (JSON null) when there is nothing to rank."""
    return round(float(np.percentile(values, q)), digits) if len(values) else None
