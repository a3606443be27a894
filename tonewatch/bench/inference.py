"""Inference speed, three ways, on the same texts and the same trained model:

(a) naive: in-process fp32 torch, one message per call (what a pipeline-style script does);
(b) batched: in-process torch, length-sorted batches;
(b') onnx: the served ONNX graph (int8 as exported) in-process, same batches; beside it the
    same model's fp32 graph, so that b'/b'(fp32) is what quantisation buys and c/b' what
    serving adds;
(c) triton: the served ONNX model, many concurrent single-message requests that Triton's
    dynamic batcher groups.

(a) and (b) each run in a fresh subprocess, so that their peak memory (VmHWM) is their own;
for (c) the peak is that of the Triton server and its Python-backend stub.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from inference.onnx_graph import load_graph
from tonewatch.bench.stats import peak_rss_mb, percentile
from tonewatch.config import Settings


@dataclass(frozen=True)
class Figures:
    messages: int
    seconds: float
    messages_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    peak_rss_mb: float | None

    @classmethod
    def from_latencies(
        cls, latencies_s: list[float], seconds: float, peak_rss_mb: float | None
    ) -> Figures:
        ms = [s * 1000 for s in latencies_s]
        return cls(
            messages=len(latencies_s),
            seconds=round(seconds, 3),
            messages_per_s=round(len(latencies_s) / seconds, 1),
            p50_ms=percentile(ms, 50, digits=2),
            p99_ms=percentile(ms, 99, digits=2),
            peak_rss_mb=peak_rss_mb,
        )


def run_in_process(mode: str, model_dir: Path, texts: list[str], batch_size: int) -> Figures:
    """(a), (b) or (b'), in this process. Latency of a batched message = its batch's."""
    predict: Callable[[list[str]], object]
    if mode == "onnx":
        predict = load_graph(model_dir)
    else:
        from inference.model import load_model

        predict = load_model(model_dir).predict
    predict(texts[:8])  # warm-up
    if mode == "naive":
        groups = [[t] for t in texts]
    else:
        ordered = sorted(texts, key=len)
        groups = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    latencies: list[float] = []
    started = time.perf_counter()
    for group in groups:
        t0 = time.perf_counter()
        predict(group)
        latencies += [time.perf_counter() - t0] * len(group)
    elapsed = time.perf_counter() - started
    return Figures.from_latencies(latencies, elapsed, peak_rss_mb([os.getpid()]))


def run_subprocess(mode: str, model_dir: Path, texts_file: Path, batch_size: int) -> Figures:
    out = subprocess.run(
        [sys.executable, "-m", "tonewatch.bench.inference", mode, str(model_dir),
         str(texts_file), str(batch_size)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Figures(**json.loads(out.stdout.strip().splitlines()[-1]))


async def run_triton(
    settings: Settings,
    texts: list[str],
    concurrency: int,
    server_pids: list[int],
    on_done: Callable[[int], None] | None = None,
) -> Figures:
    """(c): `concurrency` workers each send one message per request until all are done."""
    from inference.client import TritonClassifier

    queue: asyncio.Queue[str] = asyncio.Queue()
    for text in texts:
        queue.put_nowait(text)
    latencies: list[float] = []
    async with TritonClassifier(
        url=settings.triton_grpc_url,
        model_name=settings.triton_model_name,
        timeout_s=30.0,
        max_concurrency=concurrency,
    ) as client:
        await client.classify(texts[:8])  # warm-up

        async def worker() -> None:
            while not queue.empty():
                text = queue.get_nowait()
                t0 = time.perf_counter()
                await client.classify([text])
                latencies.append(time.perf_counter() - t0)
                if on_done:
                    on_done(1)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Figures.from_latencies(latencies, elapsed, peak_rss_mb(server_pids))


def as_dict(figures: Figures) -> dict[str, object]:
    return asdict(figures)


def speedups(results: Mapping[str, Figures]) -> dict[str, float]:
    """Throughput ratios of the report, from the figures of each mode (naive, batched,
    onnx: the served graph, onnx_fp32: its fp32 twin, triton)."""

    def ratio(mode: str, baseline: str) -> float:
        return round(results[mode].messages_per_s / results[baseline].messages_per_s, 2)

    return {
        "speedup_vs_naive": ratio("triton", "naive"),  # c/a
        "speedup_vs_batched": ratio("triton", "batched"),  # c/b
        "speedup_vs_onnx_in_process": ratio("triton", "onnx"),  # c/b': serving alone
        "served_graph_vs_fp32_graph_in_process": ratio("onnx", "onnx_fp32"),  # quantisation
    }


def write_fp32_twin(version_dir: Path, model_dir: Path, target: Path) -> Path:
    """`target`: a copy of the served version folder whose graph is the same trained model
    exported in fp32, for (b') without quantisation."""
    from inference.model import load_model
    from inference.repository import export_onnx

    serving = json.loads((version_dir / "serving.json").read_text())
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(version_dir / "tokenizer.json", target / "tokenizer.json")
    export_onnx(load_model(model_dir), target / serving["onnx_file"])
    twin = serving | {"int8": False, "quantisation": None}
    (target / "serving.json").write_text(json.dumps(twin, indent=2))
    return target


if __name__ == "__main__":  # the subprocess side of run_subprocess
    mode, model_dir, texts_file, batch = sys.argv[1:5]
    texts = json.loads(Path(texts_file).read_text())
    figures = run_in_process(mode, Path(model_dir), texts, int(batch))
    print(json.dumps(asdict(figures)))
