"""A version folder's ONNX graph run in-process, the way the Triton backend runs it: its
own tokenizer.json and serving.json, numpy in and out. For judging and benchmarking what
is served without a server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

Probabilities = NDArray[np.float32]
GraphPredictor = Callable[[list[str]], tuple[Probabilities, Probabilities]]


def load_graph(version_dir: Path) -> GraphPredictor:
    """(sentiment, risk) probabilities of a batch of texts, padded to its longest."""
    import onnxruntime as ort  # type: ignore[import-untyped]
    from tokenizers import Tokenizer

    serving = json.loads((version_dir / "serving.json").read_text())
    tokenizer = Tokenizer.from_file(str(version_dir / "tokenizer.json"))
    tokenizer.enable_truncation(int(serving["max_length"]))
    tokenizer.enable_padding(pad_id=int(serving["pad_id"]))
    session = ort.InferenceSession(str(version_dir / serving["onnx_file"]))

    def predict(texts: list[str]) -> tuple[Probabilities, Probabilities]:
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        sentiment, risk = session.run(
            ["sentiment_probs", "risk_probs"], {"input_ids": ids, "attention_mask": mask}
        )
        return sentiment, risk

    return predict
