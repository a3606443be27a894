"""The Triton backend's split of a dynamic batch into ONNX calls (pure logic)."""

from __future__ import annotations

import importlib.util
import itertools
import random
import sys
import types
from collections.abc import Callable

import pytest

from inference.repository import TRITON_MODEL_DIR

Chunks = Callable[..., list[list[int]]]


@pytest.fixture(scope="module")
def chunks() -> Chunks:
    # The backend imports Triton's in-server module; the split itself does not use it.
    sys.modules.setdefault("triton_python_backend_utils", types.ModuleType("pb_utils"))
    spec = importlib.util.spec_from_file_location("backend", TRITON_MODEL_DIR / "model.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.chunks  # type: ignore[no-any-return]


def cost(lengths: list[int], spans: list[list[int]], call_cost: int) -> int:
    return sum(max(lengths[i] for i in span) * len(span) + call_cost for span in spans)


def test_every_text_lands_in_exactly_one_chunk(chunks: Chunks) -> None:
    lengths = [random.Random(seed).randint(3, 64) for seed in range(50)]
    spans = chunks(lengths)
    assert sorted(i for span in spans for i in span) == list(range(50))


def test_chunks_are_runs_of_similar_length(chunks: Chunks) -> None:
    lengths = [60, 5, 61, 6, 5, 62, 7, 64]
    spans = chunks(lengths, call_cost=16)
    assert sorted(sorted(lengths[i] for i in span) for span in spans) == [
        [5, 5, 6, 7],
        [60, 61, 62, 64],
    ]


def test_equal_lengths_make_one_call(chunks: Chunks) -> None:
    assert chunks([12] * 40) == [list(range(40))]


def test_calls_that_cost_nothing_mean_no_padding(chunks: Chunks) -> None:
    lengths = [9, 3, 3, 9, 20]
    spans = chunks(lengths, call_cost=0)
    assert all(len({lengths[i] for i in span}) == 1 for span in spans)


def test_the_split_is_the_cheapest_contiguous_one(chunks: Chunks) -> None:
    rng = random.Random(3)
    for _ in range(30):
        lengths = [rng.randint(1, 64) for _ in range(rng.randint(1, 9))]
        ordered = sorted(range(len(lengths)), key=lengths.__getitem__)
        cheapest = min(
            cost(
                lengths, [ordered[a:b] for a, b in itertools.pairwise((0, *cuts, len(ordered)))], 16
            )
            for k in range(len(ordered))
            for cuts in itertools.combinations(range(1, len(ordered)), k)
        )
        assert cost(lengths, chunks(lengths, call_cost=16), 16) == cheapest


def test_an_empty_batch_makes_no_call(chunks: Chunks) -> None:
    assert chunks([]) == []
