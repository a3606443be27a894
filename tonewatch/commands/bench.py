"""`tonewatch bench …`: benchmarks that print JSON figures beside their baselines."""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import TaskID

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
    """Naive one-by-one vs batched in-process torch vs the served graph in-process (and its
    fp32 twin) vs Triton under concurrent load."""
    from retrain import versions
    from tonewatch import services
    from tonewatch.bench.inference import (
        as_dict,
        run_subprocess,
        run_triton,
        speedups,
        write_fp32_twin,
    )
    from tonewatch.commands.model import ensure_model_served
    from tonewatch.services.process import process_tree
    from tonewatch.services.triton import TritonService

    settings = Settings()
    services.up(settings, ["triton"])
    served = ensure_model_served(settings)
    serving = settings.model_repository / settings.triton_model_name / served / "serving.json"
    served_config = json.loads(serving.read_text())
    source = served_config.get("source") or "latest"
    model_dir = versions.resolve(settings.trained_models, source)
    texts = benchmark_texts(settings, messages)
    triton_pid = TritonService(settings).process.pid()
    server_pids = sorted(process_tree(triton_pid)) if triton_pid else []

    with tempfile.TemporaryDirectory() as tmp, progress_bar(console) as progress:
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(texts))
        results = {}
        version_dir = serving.parent
        task = progress.add_task("exporting the fp32 twin of the served graph", total=1)
        fp32_dir = write_fp32_twin(version_dir, model_dir, Path(tmp) / "fp32")
        progress.update(task, completed=1)
        for label, key, mode, folder in (
            ("(a) naive torch, one by one", "naive", "naive", model_dir),
            ("(b) batched torch", "batched", "batched", model_dir),
            ("(b') batched ONNX Runtime, served graph", "onnx", "onnx", version_dir),
            ("(b') batched ONNX Runtime, fp32 graph", "onnx_fp32", "onnx", fp32_dir),
        ):
            task = progress.add_task(label, total=1)
            results[key] = run_subprocess(mode, folder, texts_file, batch_size)
            progress.update(task, completed=1)
        task = progress.add_task("(c) triton", total=len(texts))
        results["triton"] = asyncio.run(
            run_triton(
                settings, texts, concurrency, server_pids, lambda n: progress.advance(task, n)
            )
        )
    ratios = speedups(results)
    report = {
        "messages": len(texts),
        "model": {
            "trained": model_dir.name,
            "triton_version": served,
            "quantisation": served_config.get("quantisation"),
        },
        "concurrency": concurrency,
        "batch_size": batch_size,
        "naive": as_dict(results["naive"]),
        "batched": as_dict(results["batched"]),
        "onnx_in_process": as_dict(results["onnx"]),
        "onnx_fp32_in_process": as_dict(results["onnx_fp32"]),
        "triton": as_dict(results["triton"]),
        **ratios,
    }
    if not as_json:
        per_s = {key: figures.messages_per_s for key, figures in results.items()}
        console.print(
            f"naive {per_s['naive']}/s · batched {per_s['batched']}/s · served graph"
            f" {per_s['onnx']}/s (fp32 {per_s['onnx_fp32']}/s) · triton {per_s['triton']}/s →"
            f" c/a {ratios['speedup_vs_naive']}x, c/b {ratios['speedup_vs_batched']}x,"
            f" c/b' {ratios['speedup_vs_onnx_in_process']}x, int8/fp32 in-process"
            f" {ratios['served_graph_vs_fp32_graph_in_process']}x"
        )
    typer.echo(json.dumps(report, indent=2))


@app.command("e2e")
def e2e_command(
    messages: Annotated[int, typer.Option(help="Generated messages per run (>= ~300).")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the generated stream.")] = 7,
    concurrency: Annotated[int, typer.Option(help="Concurrent requests of Triton alone.")] = 64,
    latency_rate: Annotated[
        float, typer.Option(help="Messages per second of the paced latency runs.")
    ] = 100.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON.")] = False,
) -> None:
    """Generated stream -> Kafka -> worker -> Triton -> Postgres, Redis and the alerts topic,
    with the real model and with a constant-time stub model, beside Triton alone on the same
    texts.

    Throughput comes from a burst (all messages at once); latency, to the alert's commit in
    Postgres, from a paced run at --latency-rate, so that it is not the time spent queueing
    behind the burst. The ledger counts lost messages, missed and unexpected alerts and the
    duplicates at each sink; with the real model, alert precision and recall against the
    planted incidents."""
    from inference.stub import install_stub
    from streams.generator import generate
    from tonewatch import services
    from tonewatch.bench.e2e import run_pipeline
    from tonewatch.bench.inference import as_dict, run_triton
    from tonewatch.bench.ledger import COUNTERS, combined
    from tonewatch.commands.model import ensure_model_served, load_into_triton
    from tonewatch.services.process import process_tree
    from tonewatch.services.triton import TritonService

    settings = Settings()
    services.up(settings)
    served = ensure_model_served(settings)
    stub = f"{settings.triton_model_name}_stub"
    install_stub(settings.model_repository.resolve(), stub)
    load_into_triton(settings.model_copy(update={"triton_model_name": stub}))
    run = time.strftime("%Y%m%d%H%M%S")
    workloads = {
        (model, paced): generate(seed=seed, messages=messages, tenant=f"bench-{run}-{i}")
        for i, (model, paced) in enumerate(
            (m, p) for m in (settings.triton_model_name, stub) for p in (False, True)
        )
    }
    total = len(next(iter(workloads.values())).messages)
    triton_pid = TritonService(settings).process.pid()
    server_pids = sorted(process_tree(triton_pid)) if triton_pid else []

    runs = {}
    with progress_bar(console) as progress:
        for (model, paced), workload in workloads.items():
            label = "stub model" if model == stub else f"model v{served}"
            how = f"paced {latency_rate:g}/s" if paced else "burst"
            task = progress.add_task(f"pipeline, {label}, {how}", total=total)

            def stored(n: int, task: TaskID = task) -> None:
                progress.update(task, completed=n)

            rate = latency_rate if paced else None
            runs[model, paced] = asyncio.run(
                run_pipeline(settings, model, workload, stored, rate=rate)
            )
        task = progress.add_task("Triton alone", total=total)
        texts = [m.text for m in workloads[settings.triton_model_name, False].messages]
        alone = asyncio.run(
            run_triton(
                settings, texts, concurrency, server_pids, lambda n: progress.advance(task, n)
            )
        )

    def figures(model: str) -> dict[str, object]:
        burst, paced = runs[model, False], runs[model, True]
        ledger = combined([burst.ledger, paced.ledger]).as_dict()
        return {
            "messages": burst.messages,
            "throughput_msgs_per_s": burst.throughput_msgs_per_s,
            "p50_ms": paced.p50_ms,
            "p99_ms": paced.p99_ms,
            "message_p50_ms": paced.message_p50_ms,
            "message_p99_ms": paced.message_p99_ms,
            **{name: ledger[name] for name in (*COUNTERS, "alert_precision", "alert_recall")},
            "burst": burst.as_dict(),
            "paced": paced.as_dict() | {"rate": latency_rate},
        }

    real = figures(settings.triton_model_name)
    stubbed = figures(stub)
    report = real | {
        "model": {"name": settings.triton_model_name, "triton_version": served},
        "stub": stubbed,
        "triton_alone": as_dict(alone),
        "vs_triton_alone": round(
            runs[settings.triton_model_name, False].throughput_msgs_per_s / alone.messages_per_s, 2
        ),
    }
    if not as_json:
        console.print(
            f"pipeline {real['throughput_msgs_per_s']}/s (Triton alone {alone.messages_per_s}/s,"
            f" stub model {stubbed['throughput_msgs_per_s']}/s) · alert p50 {real['p50_ms']} ms,"
            f" p99 {real['p99_ms']} ms · alert precision {real['alert_precision']},"
            f" recall {real['alert_recall']}"
        )
        for name, figures_of in (("model", real), ("stub model", stubbed)):
            console.print(
                f"{name}: " + ", ".join(f"{c} {figures_of[c]}" for c in COUNTERS), soft_wrap=True
            )
    typer.echo(json.dumps(report, indent=2))


@app.command("faults")
def faults_command(
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only these ids (e.g. F3); repeat.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON.")] = False,
    markdown: Annotated[bool, typer.Option(help="Print the table of docs/reliability.md.")] = False,
) -> None:
    """Run the reliability suite of RELIABILITY.md (fault injection, bad input, security,
    model safety) against the real services and report one row per test id.

    Takes about 20 minutes for the whole suite on 2 cores. The report is also written to
    <var_dir>/reports/faults.json. Exits 1 if any test fails.
    """
    from rich.table import Table

    from tonewatch import services
    from tonewatch.bench.faults import (
        COLUMNS,
        RELIABILITY_IDS,
        SuiteError,
        cells,
        run_suite,
        summarize,
    )
    from tonewatch.bench.faults import markdown as as_markdown

    unknown = set(only or ()) - set(RELIABILITY_IDS)
    if unknown:
        raise typer.BadParameter(
            f"unknown id(s): {', '.join(sorted(unknown))}", param_hint="--only"
        )
    settings = Settings()
    services.up(settings)
    with progress_bar(console) as progress:
        task = progress.add_task("reliability suite", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            rows, seconds = run_suite(only or (), on_progress=advance)
        except SuiteError as exc:
            console.print(f"[red]✗[/] {exc}", markup=False)
            raise typer.Exit(2) from exc
    table = summarize(rows, only or ())
    report = {"tests": table, "suite_seconds": round(seconds, 1)}
    out = settings.var_dir / "reports" / "faults.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    elif markdown:
        typer.echo(as_markdown(table))
    else:
        view = Table(title=f"reliability suite ({seconds / 60:.1f} min; report {out})")
        for column in COLUMNS:
            view.add_column(column)
        for row in table:
            view.add_row(*cells(row, passed="[green]pass[/]", failed="[red]FAIL[/]"))
        Console().print(view)
    if not all(row["passed"] for row in table):
        raise typer.Exit(1)
