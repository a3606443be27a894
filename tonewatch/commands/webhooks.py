"""`tonewatch webhooks …`: the webhook delivery worker, and the reference receiver."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

from tonewatch.config import Settings

app = typer.Typer(help="Signed webhook delivery, and a receiver to test it.", no_args_is_help=True)

LogLevel = Annotated[str, typer.Option(help="Log level: debug, info, warning, error.")]


@app.command("worker")
def worker_command(
    metrics_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Prometheus /metrics port (0: off).")
    ] = 9109,
    loglevel: LogLevel = "info",
) -> None:
    """Fan alerts out to webhook subscriptions and deliver them, signed, with retries.

    Migrates the database first (waiting for Postgres if it is down). Run several for more
    throughput: they share the alerts topic's partitions and never send a delivery twice
    at once. Stops cleanly on SIGTERM or Ctrl-C.
    """
    from prometheus_client import start_http_server

    from storage.db import migrate
    from storage.exceptions import DatabaseUnavailable
    from streams import webhook_worker
    from streams.log_throttle import throttle
    from streams.retry import until_done

    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings()
    throttle()

    async def main() -> None:
        await until_done(
            lambda: asyncio.to_thread(migrate, settings.database_url),
            what="database migration",
            retry_on=(DatabaseUnavailable,),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await webhook_worker.run(settings, stop)

    if metrics_port:
        start_http_server(metrics_port)
    asyncio.run(main())


@app.command("receive")
def receive_command(
    secret: Annotated[
        list[str], typer.Option(help="A whsec_ secret to accept; repeat during a rotation.")
    ],
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 9000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    tolerance_s: Annotated[
        int, typer.Option(min=1, help="Accepted clock difference of webhook-timestamp.")
    ] = 300,
) -> None:
    """Serve the reference webhook receiver, to try deliveries out.

    Deliveries go to POST /webhook: it verifies signatures and timestamps and drops
    duplicate event ids. GET /events lists the accepted events.
    """
    import uvicorn

    from tonewatch.webhook_receiver import create_receiver

    uvicorn.run(create_receiver(secret, tolerance_s), host=host, port=port, log_level="info")
