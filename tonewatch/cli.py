"""The `tonewatch` command line: one typer app, a sub-app per area."""

from __future__ import annotations

import contextlib
import json
import os
import textwrap
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tonewatch import services
from tonewatch.commands import api as api_commands
from tonewatch.commands import bench as bench_commands
from tonewatch.commands import classify as classify_commands
from tonewatch.commands import db as db_commands
from tonewatch.commands import demo as demo_commands
from tonewatch.commands import model as model_commands
from tonewatch.commands import replay as replay_commands
from tonewatch.commands import retrain as retrain_commands
from tonewatch.commands import webhooks as webhooks_commands
from tonewatch.commands import worker as worker_commands
from tonewatch.config import Settings, settings_reference
from tonewatch.services.exceptions import ServiceError
from tonewatch.workers import WorkerStatus, worker_statuses

app = typer.Typer(help="Real-time opinion and risk monitoring.", no_args_is_help=True)
services_app = typer.Typer(help="Run the local Kafka, Redis, Postgres and Triton.")
app.add_typer(services_app, name="services")
app.add_typer(model_commands.app, name="model")
app.command("classify")(classify_commands.classify_command)
app.add_typer(bench_commands.app, name="bench")
app.add_typer(db_commands.app, name="db")
app.command("replay")(replay_commands.replay_command)
app.command("generate")(replay_commands.generate_command)
app.command("worker")(worker_commands.worker_command)
app.command("demo")(demo_commands.demo_command)
app.command("api")(api_commands.api_command)
app.add_typer(api_commands.keys_app, name="keys")
app.add_typer(retrain_commands.app, name="retrain")
app.add_typer(webhooks_commands.app, name="webhooks")

console = Console()
err_console = Console(stderr=True)

Only = Annotated[
    list[str] | None,
    typer.Option("--only", help=f"Limit to these services ({', '.join(services.SERVICE_NAMES)})."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _status_table(statuses: list[services.ServiceStatus]) -> Table:
    table = Table(title="tonewatch services")
    for column in ("service", "state", "port", "pid", "log", "version (as the server reports it)"):
        table.add_column(column, no_wrap=True)
    for s in statuses:
        state = "[green]up[/]" if s.up else "[red]down[/]"
        log = os.path.relpath(s.log) if s.log.startswith(os.getcwd()) else s.log
        # Postgres' version() runs on; `status --json` has it whole.
        version = textwrap.shorten(s.version or "-", width=44, placeholder=" …")
        table.add_row(s.name, state, str(s.port), str(s.pid or "-"), log, version)
    return table


def _workers_table(statuses: list[WorkerStatus]) -> Table:
    table = Table(title="tonewatch workers")
    for column in ("worker", "state", "pid", "lag", "breaker", "model", "stalls recovered"):
        table.add_column(column, no_wrap=True)
    for w in statuses:
        color = "green" if w.up else "red"
        h = w.health
        cells = (
            [str(h.lag if h.lag is not None else "unknown"), h.breaker, h.model_version or "-",
             str(h.stalls)] if h else ["-"] * 4
        )  # fmt: skip
        table.add_row(w.name, f"[{color}]{w.state}[/]", str(w.pid or "-"), *cells)
    return table


def _status_json(
    statuses: list[services.ServiceStatus], workers: list[WorkerStatus] | None = None
) -> str:
    report = {s.name: s.as_dict() for s in statuses} | {w.name: w.as_dict() for w in workers or []}
    return json.dumps(report, indent=2)


@services_app.command("up")
def services_up(only: Only = None, as_json: AsJson = False) -> None:
    """Install what is missing, start what is not running, wait until all answer."""
    settings = Settings()

    def report(status: services.ServiceStatus, spawned: bool) -> None:
        if not as_json:
            verb = "started" if spawned else "already running"
            version = textwrap.shorten(status.version or "-", width=44, placeholder=" …")
            console.print(f"[green]✓[/] {status.name} {verb} on :{status.port} ({version})")

    try:
        with (
            console.status("starting services…", spinner="dots")
            if not as_json
            else contextlib.nullcontext()
        ):
            statuses = services.up(settings, only, on_ready=report)
    except (ServiceError, ValueError) as exc:
        # markup off: log tails contain brackets; soft wrap: keep the log path on one line
        err_console.print(f"✗ {exc}", style="red", soft_wrap=True, markup=False)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(_status_json(statuses))


@services_app.command("down")
def services_down(only: Only = None) -> None:
    """Stop the services that tonewatch started."""
    for name, was_running in services.down(Settings(), only).items():
        console.print(f"{name}: {'stopped' if was_running else 'not running'}")


@services_app.command("status")
def services_status(only: Only = None, as_json: AsJson = False) -> None:
    """Ask each service for its version over its own protocol, and read each local worker's
    health report (lag, breaker, model). Exits 1 if any of them is down."""
    settings = Settings()
    statuses = services.status(settings, only)
    workers = [] if only else worker_statuses(settings)
    if as_json:
        typer.echo(_status_json(statuses, workers))
    else:
        console.print(_status_table(statuses))
        if workers:
            console.print(_workers_table(workers))
    if not all(s.up for s in statuses) or not all(w.up for w in workers):
        raise typer.Exit(1)


def config_markdown() -> str:
    """The configuration table of docs/configuration.md (a test keeps the page in step)."""
    lines = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    lines += [f"| `{env}` | `{default}` | {text} |" for env, default, text in settings_reference()]
    return "\n".join(lines)


@app.command("config")
def show_config(
    markdown: Annotated[bool, typer.Option(help="Print docs/configuration.md's table.")] = False,
) -> None:
    """Show every setting: its variable, its effective value and what it does."""
    if markdown:
        typer.echo(config_markdown())
        return
    settings = Settings()
    table = Table(title="tonewatch configuration")
    for column in ("variable", "value", "description"):
        table.add_column(column)
    for env, _, text in settings_reference():
        value = getattr(settings, env.removeprefix("TONEWATCH_").lower())
        table.add_row(env, "" if value is None else str(value), text)
    console.print(table)
