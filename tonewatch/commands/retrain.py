"""`tonewatch retrain worker` (the loop) and `tonewatch retrain run` (one round, now)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console

from tonewatch.config import Settings

app = typer.Typer(help="Retrain the model from labellers' feedback.", no_args_is_help=True)
console = Console()


@app.command("worker")
def worker_command(
    loglevel: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
) -> None:
    """Consume feedback into the label store; train, gate and promote when a round is due.
    Stops cleanly on SIGTERM or Ctrl-C (a round in progress is abandoned: the champion
    keeps serving, and the next start trains again)."""
    from storage.db import migrate
    from streams.topics import ensure_topics

    # Our loggers at the asked level; libraries (ONNX Runtime's quantiser logs every
    # tensor at INFO on the root logger) only from warnings up.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in ("tonewatch", "retrain", "inference", "storage", "streams"):
        logging.getLogger(name).setLevel(loglevel.upper())
    settings = Settings()
    migrate(settings.database_url)
    asyncio.run(ensure_topics(settings))
    asyncio.run(_worker(settings))


async def _worker(settings: Settings) -> None:
    from tonewatch.retrain_worker import run

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop)


@app.command("run")
def run_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Run one round now on the labels in the store (trigger "manual")."""
    from retrain.rounds import run_round
    from storage.db import connected, migrate
    from tonewatch.retrain_worker import announce

    settings = Settings()
    migrate(settings.database_url)

    async def once() -> object:
        async with connected(settings) as engine:
            return await run_round(
                settings, engine, "manual", lambda event: announce(settings, event),
                lambda stage: console.print(f"[bold]{stage}[/]"),
            )  # fmt: skip

    outcome = asyncio.run(once())
    payload = asdict(outcome)  # type: ignore[call-overload]
    if as_json:
        typer.echo(json.dumps(payload, default=str))
        return
    colour = "green" if payload["status"] == "promoted" else "yellow"
    console.print(f"[{colour}]round {payload['run_id']}: {payload['status']}[/]")
    for reason in payload["reasons"]:
        console.print(f"  • {reason}")
    if payload["report_dir"]:
        console.print(f"  report: {payload['report_dir']}/REPORT.md")
