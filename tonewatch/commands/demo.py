"""`tonewatch demo`: the main job on the bundled defaults, from a fresh machine.

Services up -> a model trained (or reused) and served -> a worker -> a generated stream with
planted incidents replayed through Kafka -> the alerts printed as they land, checked against
what was planted, and where to find them in Postgres and Redis.

The check is the ledger of `bench e2e`: the demo exits 1, saying which, when a message was
lost, a planted alert was missed or any sink holds a duplicate. Alerts nobody planted are
shown (they are the model's false alarms, or its opinions) but do not fail the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from tonewatch.commands.progress import progress_bar
from tonewatch.config import Settings
from tonewatch.contracts import Alert

if TYPE_CHECKING:
    from streams.generator import Workload
    from tonewatch.bench.ledger import Observed

console = Console()

SEVERITY_STYLE = {
    "low": "dim",
    "medium": "yellow",
    "high": "bold red",
    "critical": "bold white on red",
}


def demo_command(
    messages: Annotated[int, typer.Option(help="Messages in the generated stream.")] = 2000,
    rate: Annotated[float, typer.Option(help="Replay rate, messages per second.")] = 400.0,
    seed: Annotated[int, typer.Option(help="Seed of the generated stream.")] = 7,
    wait_s: Annotated[float, typer.Option(help="How long to wait for late alerts.")] = 60.0,
) -> None:
    """Run the whole pipeline on a generated stream and show the alerts it raises."""
    from retrain import versions
    from streams.generator import generate
    from tonewatch import services
    from tonewatch.commands.model import ensure_model_served, train_command
    from tonewatch.workers import start_worker, worker_process

    settings = Settings()
    console.rule("[bold]1/5 services")
    services.up(settings, on_ready=lambda s, _: console.print(f"[green]✓[/] {s.name} :{s.port}"))

    console.rule("[bold]2/5 model")
    try:
        trained = versions.latest(settings.trained_models)
        console.print(f"reusing the trained model {trained.name}")
    except FileNotFoundError:
        console.print(
            "no trained model yet: training the quick recipe (the first run only; "
            "`tonewatch model train --recipe full` makes the full one)"
        )
        train_command(recipe="quick")
    served = ensure_model_served(settings)
    console.print(f"[green]✓[/] Triton serves {settings.triton_model_name} v{served}")

    console.rule("[bold]3/5 worker")
    worker = worker_process(settings, "demo")
    worker.stop()  # a worker left over from an interrupted demo
    start_worker(settings, "demo")
    console.print(f"[green]✓[/] worker running (pid {worker.pid()}, log {worker.log_path})")

    console.rule("[bold]4/5 replay")
    tenant = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    workload = generate(seed=seed, messages=messages, tenant=tenant)
    console.print(
        f"{len(workload.messages)} messages for tenant {tenant}, "
        f"{len(workload.incidents)} planted incidents:"
    )
    for incident in workload.incidents:
        console.print(f"  • {incident.description}")
    try:
        alerts = asyncio.run(_replay_and_watch(settings, workload, rate, wait_s))
    finally:
        worker.stop()

    console.rule("[bold]5/5 result")
    failures = _summary(settings, workload, alerts)
    if failures:
        console.print(
            f"[red]✗ the demo failed its ledger:[/] {'; '.join(failures)}", soft_wrap=True
        )
        raise typer.Exit(1)
    console.print("[green]✓[/] nothing lost, nothing missed, nothing doubled")


async def _replay_and_watch(
    settings: Settings, workload: Workload, rate: float, wait_s: float
) -> list[Alert]:
    from storage import messages as message_store
    from storage.cache import AlertCache
    from storage.db import create_engine
    from streams.replay import replay_messages

    tenant = workload.messages[0].tenant
    total = len(workload.messages)
    cache = AlertCache.from_settings(settings)
    engine = create_engine(settings)
    seen: list[Alert] = []
    expected_kinds = {(e.source, e.subject, e.kind) for e in workload.expected}

    async def watch() -> None:
        async for alert in cache.live(tenant):
            seen.append(alert)
            style = SEVERITY_STYLE[alert.severity]
            console.print(
                f"[{style}]{alert.severity:>8}[/] {alert.kind:<16} {alert.source:<7} "
                f"{alert.entity or '-':<14} {alert.summary}"
            )

    watcher = asyncio.create_task(watch())
    try:
        with progress_bar(console) as progress:
            task = progress.add_task("replay", total=len(workload.messages))
            await replay_messages(
                settings, workload.messages, rate,
                on_progress=lambda n: progress.advance(task, n),
            )  # fmt: skip
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            raised = expected_kinds <= {(a.source, a.entity, a.kind) for a in seen}
            if raised and len(await message_store.stored_at(engine, tenant)) >= total:
                await asyncio.sleep(2.0)  # a moment for stragglers
                break
            await asyncio.sleep(0.5)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await cache.close()
        await engine.dispose()
    return seen


def _summary(settings: Settings, workload: Workload, live: list[Alert]) -> list[str]:
    """Print the planted incidents, the alerts and the ledger; returns the ledger's failures."""
    from tonewatch.bench.ledger import COUNTERS, reconcile

    tenant = workload.messages[0].tenant
    observed = asyncio.run(_observed(settings, workload, live))
    alerts = observed.alerts
    ledger = reconcile(workload.expected, observed)
    table = Table(title=f"planted incidents of {tenant} and the alerts they raised")
    for column in ("incident", "subject", "expected alerts", "also raised on it"):
        table.add_column(column)
    for incident in workload.incidents:
        raised = {
            a.kind for a in alerts if (a.source, a.entity) == (incident.source, incident.subject)
        }
        kinds = sorted(e.kind for e in incident.expected)
        marks = " ".join(f"[green]{k}[/]" if k in raised else f"[red]{k} missing[/]" for k in kinds)
        extra = sorted(raised - set(kinds))
        table.add_row(incident.kind, incident.subject, marks, ", ".join(extra) or "")
    console.print(table)
    console.print(
        f"expected {ledger.expected_alerts} · raised {ledger.raised_alerts} · "
        f"alert precision {ledger.alert_precision} · recall {ledger.alert_recall}",
        soft_wrap=True,
    )
    console.print(", ".join(f"{name} {getattr(ledger, name)}" for name in COUNTERS), soft_wrap=True)
    host, port = settings.redis_url.split("//")[1].split("/")[0].split(":")
    console.print("\nWhere to look:")
    console.print(
        f"  Postgres: psql '{settings.database_url.replace('+psycopg', '')}' -c "
        f'"select created_at, kind, severity, entity, summary from alerts where tenant = '
        f"'{tenant}' order by created_at\"",
        soft_wrap=True,  # commands to copy: never wrapped
    )
    console.print(
        f"  Redis:    redis-cli -h {host} -p {port} LRANGE tw:{tenant}:alerts 0 -1", soft_wrap=True
    )
    console.print(
        f"  Web:      `tonewatch api`, then sign in at http://{settings.api_host}:{settings.api_port}"
        f"/ui/login with this key of {tenant} (scopes read, subscribe, label):",
        soft_wrap=True,
    )
    console.print(f"            {_demo_key(settings, tenant)}", soft_wrap=True, highlight=False)
    console.print("  Keep a worker running: `tonewatch worker`; replay more: `tonewatch replay`.")
    return ledger.failures()


async def _observed(settings: Settings, workload: Workload, live: list[Alert]) -> Observed:
    """What the demo's tenant has at each sink: Postgres, the Redis list, the alerts topic
    and the live feed (the Redis channel that the API's SSE stream relays)."""
    from storage import alerts as alert_store
    from storage import messages as message_store
    from storage.db import connected
    from tonewatch.bench.ledger import Observed, listed_keys, published_keys

    tenant = workload.messages[0].tenant
    async with connected(settings) as engine:
        alerts = await alert_store.recent(engine, tenant, limit=None)
        stored = await message_store.stored_at(engine, tenant)
    return Observed(
        produced=[m.id for m in workload.messages], stored=list(stored), alerts=alerts,
        redis=await listed_keys(settings, tenant), topic=await published_keys(settings, tenant),
        sse=[a.dedup_key for a in live],
    )  # fmt: skip


def _demo_key(settings: Settings, tenant: str) -> str:
    """An API key for the demo tenant, so that its alerts can be browsed and labelled."""
    from storage import api_keys
    from storage.db import connected

    async def make() -> str:
        async with connected(settings) as engine:
            scopes = ("read", "subscribe", "label")
            return (await api_keys.create(engine, tenant, "demo", scopes))[1]

    return asyncio.run(make())
