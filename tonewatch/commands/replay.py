"""`tonewatch replay` and `tonewatch generate`: put recorded or generated traffic on Kafka."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tonewatch.commands.progress import progress_bar
from tonewatch.config import Settings
from tonewatch.contracts import SOURCES, Source

console = Console(stderr=True)


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def replay_command(
    file: Annotated[
        Path,
        typer.Option(
            "--file", "-f", exists=True, dir_okay=False, help="JSONL, one message per line."
        ),
    ],
    source: Annotated[
        Source | None,
        typer.Option(help="Topic to replay onto; defaults to the file's name (news.jsonl)."),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(min=0.001, help="Records per second; as fast as possible when omitted."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Send each line of a file, as is, to a source topic (bad lines too: the worker
    dead-letters them). Exits 1 when Kafka refused any record (e.g. one over 1 MiB)."""
    from aiokafka.errors import KafkaError

    from streams.replay import replay

    named: dict[str, Source] = {name: name for name in SOURCES}
    source = source or named.get(file.stem)
    if source is None:
        console.print(f"[red]✗[/] name the topic with --source ({', '.join(SOURCES)})")
        raise typer.Exit(2)
    settings = Settings()
    total = _count_lines(file)
    try:
        with file.open("rb") as lines, progress_bar(console) as progress:
            task = progress.add_task(f"replay → {source}", total=total)
            report = asyncio.run(
                replay(
                    settings,
                    source,
                    lines,
                    rate=rate,
                    on_progress=lambda n: progress.advance(task, n),
                )
            )
            progress.update(task, completed=total)
    except KafkaError as exc:  # the broker is unreachable, or refused the topics
        console.print(f"[red]✗[/] Kafka at {settings.kafka_bootstrap}: {exc!r}", highlight=False)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        mark = "[green]✓[/]" if not report.failed else "[yellow]![/]"
        console.print(
            f"{mark} {report.sent} sent to {', '.join(report.topics)}, {report.failed} failed, "
            f"{report.blank} blank line(s) skipped, in {report.elapsed_s:.1f} s "
            f"({report.rate:.0f}/s)"
        )
        for reason, count in sorted(report.reasons.items()):
            console.print(f"  {reason}: {count}", highlight=False)
        for failure in report.failures[:10]:
            console.print(
                f"  line {failure.position}: {failure.detail}", markup=False, highlight=False
            )
    if report.failed:
        raise typer.Exit(1)


def generate_command(
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="Output folder.")],
    seed: Annotated[int, typer.Option(help="Same seed, same workload, byte for byte.")] = 7,
    messages: Annotated[int, typer.Option(min=1, help="About how many messages.")] = 2000,
    tenant: Annotated[str, typer.Option(help="Tenant of every message.")] = "demo",
    warmup_windows: Annotated[
        int, typer.Option(min=1, help="Background windows before any incident.")
    ] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print a summary as JSON.")] = False,
) -> None:
    """Write a seeded workload with planted incidents: <source>.jsonl files for `replay`,
    and expected.json with the alerts the pipeline must raise (windows of TONEWATCH_WINDOW_S)."""
    from streams.generator import expected_json, generate, write_jsonl

    settings = Settings()
    try:
        workload = generate(
            seed=seed,
            messages=messages,
            tenant=tenant,
            window_s=settings.window_s,
            warmup_windows=warmup_windows,
        )
    except ValueError as exc:
        console.print(f"[red]✗[/] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    paths = write_jsonl(workload, out)
    expected = out / "expected.json"
    expected.write_text(expected_json(workload))
    counts = {source: len(items) for source, items in workload.by_source().items()}
    summary = {
        "messages": len(workload.messages),
        "by_source": counts,
        "incidents": len(workload.incidents),
        "expected_alerts": len(workload.expected),
        "files": {source: str(path) for source, path in paths.items()},
        "expected": str(expected),
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console.print(
        f"[green]✓[/] {summary['messages']} messages "
        f"({', '.join(f'{n} {s}' for s, n in counts.items())}), "
        f"{len(workload.incidents)} incidents, {len(workload.expected)} expected alerts → {out}"
    )
    for incident in workload.incidents:
        console.print(f"  {incident.kind}: {incident.description}", highlight=False)
