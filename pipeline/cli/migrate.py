"""`tokenpipe migrate`: apply the ClickHouse migrations in schemas/clickhouse."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.config import load_settings
from pipeline.migrate import apply


def migrate_command(
    dsn: str | None = typer.Option(
        None, "--dsn", help="ClickHouse DSN (default: TOKENPIPE_CLICKHOUSE_DSN / settings)."
    ),
    database: str | None = typer.Option(
        None, "--database", help="Database inside the DSN (created when missing)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the SQL that would run; change nothing."
    ),
    config: Path | None = typer.Option(None, "--config", help="YAML settings file."),
) -> None:
    """Apply pending ClickHouse migrations (and re-apply a changed raw_ttl_days)."""
    from pipeline.store import Store, parse_dsn

    settings = load_settings(config, clickhouse_dsn=dsn)
    console = Console()
    params = {"raw_ttl_days": str(settings.raw_ttl_days)}
    with Store.open(settings.dsn, database) as store:
        done = apply(store, dry_run=dry_run, parameters=params)
    where = escape(parse_dsn(settings.dsn).redacted())
    if not done:
        console.print(f"[green]up to date[/green] {where}")
        return
    for item in done:
        label = f"{item.version:04d} {item.name}" if item.version is not None else item.name
        verb = "would apply" if dry_run else "applied"
        console.print(f"[green]{verb}[/green] [bold]{escape(label)}[/bold]")
        if dry_run:
            for stmt in item.statements:
                console.print(escape(stmt) + "\n;", highlight=False, soft_wrap=True)
    if dry_run:
        console.print(f"[yellow]dry run: nothing changed[/yellow] {where}")
