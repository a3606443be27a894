"""The inference benchmark's throughput ratios (tonewatch/bench/inference.py)."""

from __future__ import annotations

import pytest

from tonewatch.bench.inference import Figures, speedups

pytestmark = pytest.mark.unit


def _at(messages_per_s: float) -> Figures:
    return Figures(1000, 1000 / messages_per_s, messages_per_s, 1.0, 2.0, None)


def test_each_ratio_divides_the_right_throughputs() -> None:
    results = {
        "naive": _at(50.0),
        "batched": _at(100.0),
        "onnx": _at(200.0),
        "onnx_fp32": _at(80.0),
        "triton": _at(300.0),
    }
    assert speedups(results) == {
        "speedup_vs_naive": 6.0,  # c/a
        "speedup_vs_batched": 3.0,  # c/b
        "speedup_vs_onnx_in_process": 1.5,  # c/b': what serving adds to the same graph
        "served_graph_vs_fp32_graph_in_process": 2.5,  # b'/b'(fp32): quantisation
    }


def test_ratios_are_rounded_to_two_decimals() -> None:
    results = {m: _at(3.0) for m in ("naive", "batched", "onnx", "onnx_fp32")}
    results["triton"] = _at(10.0)
    assert speedups(results)["speedup_vs_onnx_in_process"] == 3.33
