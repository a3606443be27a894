"""`tonewatch classify`: score a JSONL file through Triton, line by line, losing nothing."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, TextIO

import typer
from pydantic import ValidationError
from rich.console import Console

from tonewatch.commands.progress import progress_bar
from tonewatch.config import Settings
from tonewatch.contracts import Classification, ClassifyRequest

console = Console(stderr=True)
CHUNK = 512  # lines handed to the client at once; it splits them into Triton batches


def parse_line(number: int, line: str) -> ClassifyRequest | str:
    """The request on this line, or a one-line error saying what is wrong with it."""
    try:
        return ClassifyRequest.model_validate_json(line)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}" for e in exc.errors()
        )
        return f"line {number}: {problems}"


def read_requests(path: Path) -> Iterator[ClassifyRequest | str]:
    """Each non-blank line as a request, or as the error that says why it is not one."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield f"line {number}: invalid UTF-8 at byte {exc.start}"
                continue
            if text.strip():
                yield parse_line(number, text)


async def classify_file(
    settings: Settings,
    source: Path,
    sink: TextIO,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[int, list[str]]:
    """Score every valid line of `source` into `sink`. Returns (scored, errors)."""
    from inference.client import TritonClassifier

    errors: list[str] = []
    scored = 0
    pending: list[ClassifyRequest] = []
    async with TritonClassifier(
        url=settings.triton_grpc_url,
        model_name=settings.triton_model_name,
        timeout_s=settings.triton_timeout_s,
        max_concurrency=settings.triton_max_concurrency,
        retries=settings.triton_retries,
    ) as client:

        async def flush() -> None:
            nonlocal scored
            predictions = await client.classify([r.text for r in pending])
            for request, p in zip(pending, predictions, strict=True):
                result = Classification(
                    id=request.id, sentiment=p.sentiment, scores=p.scores, risks=p.risks,
                    model_version=p.model_version,
                )  # fmt: skip
                sink.write(result.model_dump_json() + "\n")
            scored += len(pending)
            if on_progress:
                on_progress(len(pending))
            pending.clear()

        for parsed in read_requests(source):
            if isinstance(parsed, str):
                errors.append(parsed)
                console.print(f"[yellow]skipped[/] {parsed}", markup=True, highlight=False)
                if on_progress:
                    on_progress(1)
                continue
            pending.append(parsed)
            if len(pending) >= CHUNK:
                await flush()
        if pending:
            await flush()
    return scored, errors


def classify_command(
    input: Annotated[Path, typer.Option("--input", "-i", help="JSONL: {id, text, source?}.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL of classifications.")],
) -> None:
    """Score a JSONL file through Triton (starting the services and model when needed)."""
    from tonewatch import services
    from tonewatch.commands.model import ensure_model_served

    settings = Settings()
    if not input.is_file():
        console.print(f"[red]✗ no such input file: {input}[/]")
        raise typer.Exit(2)
    services.up(settings, ["triton"])
    version = ensure_model_served(settings)
    total = sum(1 for _ in read_requests(input))
    started = time.perf_counter()
    with output.open("w") as sink, progress_bar(console) as progress:
        task = progress.add_task(f"classify (model v{version})", total=total)
        scored, errors = asyncio.run(
            classify_file(settings, input, sink, lambda n: progress.advance(task, n))
        )
    elapsed = time.perf_counter() - started
    summary = {
        "scored": scored,
        "errors": len(errors),
        "seconds": round(elapsed, 2),
        "messages_per_s": round(scored / elapsed, 1) if elapsed else None,
        "output": str(output),
    }
    console.print(f"[green]✓[/] {scored} scored, {len(errors)} bad line(s) skipped, "
                  f"{summary['messages_per_s']} msg/s")  # fmt: skip
    sys.stdout.write(json.dumps(summary) + "\n")
