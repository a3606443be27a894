"""`tonewatch bench …`: benchmarks that print JSON figures beside their baselines."""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tonewatch.commands.progress import progress_bar
from tonewatch.config import Settings

app = typer.Typer(help="Benchmarks: JSON figures side by side with a baseline.")
console = Console(stderr=True)


def benchmark_texts(settings: Settings, count: int, seed: int = 7) -> list[str]:
    """A fixed, mixed sample of held-out texts (test splits), repeated if there are few."""
    from retrain.datasets import load, trainable
    from retrain.train import split_examples

    names = trainable(settings.data_dir)
    pools = split_examples([load(n, settings.data_dir) for n in names], "test")
    texts = sorted({e.text for examples in pools.values() for e in examples})
    rng = random.Random(seed)
    rng.shuffle(texts)
    while len(texts) < count:
        texts += texts
    return texts[:count]


@app.command("inference")
def inference_command(
    messages: Annotated[int, typer.Option(help="Texts per mode.")] = 1000,
    concurrency: Annotated[int, typer.Option(help="Concurrent requests to Triton.")] = 64,
    batch_size: Annotated[int, typer.Option(help="Batch size of the in-process mode.")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON.")] = False,
) -> None:
    """Naive one-by-one vs batched in-process torch vs Triton under concurrent load."""
    from retrain import versions
    from tonewatch import services
    from tonewatch.bench.inference import as_dict, run_subprocess, run_triton
    from tonewatch.commands.model import ensure_model_served
    from tonewatch.services.process import process_tree
    from tonewatch.services.triton import TritonService

    settings = Settings()
    services.up(settings, ["triton"])
    served = ensure_model_served(settings)
    serving = settings.model_repository / settings.triton_model_name / served / "serving.json"
    source = json.loads(serving.read_text()).get("source") or "latest"
    model_dir = versions.resolve(settings.trained_models, source)
    texts = benchmark_texts(settings, messages)
    triton_pid = TritonService(settings).process.pid()
    server_pids = sorted(process_tree(triton_pid)) if triton_pid else []

    with tempfile.TemporaryDirectory() as tmp, progress_bar(console) as progress:
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(texts))
        results = {}
        version_dir = serving.parent
        for label, mode, folder in (
            ("(a) naive torch, one by one", "naive", model_dir),
            ("(b) batched torch", "batched", model_dir),
            ("(b') batched ONNX Runtime", "onnx", version_dir),
        ):
            task = progress.add_task(label, total=1)
            results[mode] = run_subprocess(mode, folder, texts_file, batch_size)
            progress.update(task, completed=1)
        task = progress.add_task("(c) triton", total=len(texts))
        results["triton"] = asyncio.run(
            run_triton(
                settings, texts, concurrency, server_pids, lambda n: progress.advance(task, n)
            )
        )
    naive, batched, triton = (results[m].messages_per_s for m in ("naive", "batched", "triton"))
    report = {
        "messages": len(texts),
        "model": {"trained": model_dir.name, "triton_version": served},
        "concurrency": concurrency,
        "batch_size": batch_size,
        "naive": as_dict(results["naive"]),
        "batched": as_dict(results["batched"]),
        "onnx_in_process": as_dict(results["onnx"]),
        "triton": as_dict(results["triton"]),
        "speedup_vs_naive": round(triton / naive, 2),
        "speedup_vs_batched": round(triton / batched, 2),
    }
    if not as_json:
        console.print(
            f"naive {naive}/s · batched {batched}/s · triton {triton}/s → "
            f"c/a {report['speedup_vs_naive']}x, c/b {report['speedup_vs_batched']}x"
        )
    typer.echo(json.dumps(report, indent=2))
