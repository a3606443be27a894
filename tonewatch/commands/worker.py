"""`tonewatch worker`: run the stream processor (one faust worker; start more to scale out)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from tonewatch.config import Settings

LogLevel = Annotated[str, typer.Option(help="Log level: debug, info, warning, error.")]


def worker_command(
    loglevel: LogLevel = "info",
    health_file: Annotated[
        Path | None,
        typer.Option(help="Write lag, breaker and model version here at every watchdog check."),
    ] = None,
) -> None:
    """Consume news, reviews and chats; score them through Triton; raise alerts.

    Migrates the database and creates missing topics first. Workers with the same
    TONEWATCH_WORKER_APP_ID share the partitions between them.
    """
    import faust
    from prometheus_client import start_http_server

    from storage.db import migrate
    from streams.app import create_app
    from streams.log_throttle import throttle
    from streams.topics import ensure_topics

    settings = Settings()
    throttle()
    migrate(settings.database_url)
    asyncio.run(ensure_topics(settings))
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port)
    worker = faust.Worker(create_app(settings, health_file), loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
