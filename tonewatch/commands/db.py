"""`tonewatch db …`: the Postgres schema (Alembic migrations)."""

from __future__ import annotations

import typer
from rich.console import Console

from tonewatch.config import Settings

app = typer.Typer(help="The Postgres schema: migrate it, show its revision.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


@app.command("upgrade")
def upgrade_command() -> None:
    """Migrate the database to the newest schema (safe while workers start)."""
    from storage.db import current_revision, migrate
    from storage.exceptions import DatabaseUnavailable

    settings = Settings()
    try:
        migrate(settings.database_url)
        revision = current_revision(settings.database_url)
    except DatabaseUnavailable as exc:
        err_console.print(f"✗ {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    console.print(f"[green]✓[/] database at revision {revision} (head)")


@app.command("current")
def current_command() -> None:
    """Print the database's schema revision, and whether it is the newest."""
    from storage.db import current_revision, head_revision
    from storage.exceptions import DatabaseUnavailable

    settings = Settings()
    try:
        revision = current_revision(settings.database_url)
    except DatabaseUnavailable as exc:
        err_console.print(f"✗ {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    head = head_revision()
    if revision == head:
        console.print(f"{revision} (head)")
    else:
        console.print(f"{revision or 'none'} (head is {head}: run `tonewatch db upgrade`)")
