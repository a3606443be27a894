"""`tonewatch api` (the HTTP API and web pages) and `tonewatch keys` (API keys)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tonewatch.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
console = Console()

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def api_command(
    host: Annotated[str | None, typer.Option(help="Interface (TONEWATCH_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (TONEWATCH_API_PORT).")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) and the web pages (/ui). Migrates first."""
    import uvicorn

    from storage.db import migrate
    from tonewatch.api.app import create_app

    overrides = {k: v for k, v in {"api_host": host, "api_port": port}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    migrate(settings.database_url)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        proxy_headers=False,
        server_header=False,
        log_level="info",
    )


@keys_app.command("create")
def create_key(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for.")],
    name: Annotated[str, typer.Option(help="Who holds the key (labels are recorded under it).")],
    scope: Annotated[
        list[str], typer.Option(help="read, subscribe, label or admin; repeat for several.")
    ],
    as_json: AsJson = False,
) -> None:
    """Make a key and print its token, the only time it is shown."""
    from storage import api_keys
    from tonewatch.api.auth import SCOPES

    unknown = sorted(set(scope) - set(SCOPES))
    if unknown:
        raise typer.BadParameter(f"unknown scopes {unknown}; choose from {list(SCOPES)}")
    key, token = asyncio.run(_with_engine(lambda e: api_keys.create(e, tenant, name, tuple(scope))))
    if as_json:
        typer.echo(json.dumps({"key_id": key.key_id, "tenant": tenant, "token": token}))
        return
    console.print(f"key {key.key_id} for {name} in tenant {tenant}, scopes {list(key.scopes)}")
    console.print("token (shown once):")
    console.print(token, soft_wrap=True, highlight=False)


@keys_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: AsJson = False,
) -> None:
    """Keys without their secrets."""
    from storage import api_keys

    keys = asyncio.run(_with_engine(lambda e: api_keys.listed(e, tenant)))
    rows = [
        {
            "key_id": k.key_id, "tenant": k.tenant, "name": k.name, "scopes": list(k.scopes),
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
        for k in keys
    ]  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title="API keys")
    for column in ("key_id", "tenant", "name", "scopes", "created_at", "revoked_at"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) if v is not None else "-" for v in row.values()))
    console.print(table)


@keys_app.command("revoke")
def revoke_key(key_id: Annotated[str, typer.Argument(help="The key to revoke.")]) -> None:
    """Revoke a key at once; requests with it get 401 from then on."""
    from storage import api_keys

    if not asyncio.run(_with_engine(lambda e: api_keys.revoke(e, key_id))):
        console.print(f"[red]no active key {key_id}[/]")
        raise typer.Exit(1)
    console.print(f"[green]✓[/] key {key_id} revoked")


async def _with_engine(use: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `use` with a migrated database's engine, disposed of afterwards."""
    from storage.db import connected, migrate

    settings = Settings()
    migrate(settings.database_url)
    async with connected(settings) as engine:
        return await use(engine)
