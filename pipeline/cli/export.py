"""`tokenpipe export` (usage_raw rows to CSV/Parquet) and `tokenpipe digest` (daily digest).

Both open the store themselves. With an embedded store (``chdb://``) a running
worker holds the data path (chDB: one process per path), so stop the worker
first; with a ClickHouse server DSN they run beside it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import typer

from pipeline import digest as digest_mod
from pipeline import export as export_mod
from pipeline.config import load_settings
from pipeline.errors import UserError
from pipeline.report import parse_time


def export_command(
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
    start: str = typer.Option(..., "--from", help="ISO time or -7d/-12h/-30m (inclusive)."),
    end: str | None = typer.Option(None, "--to", help="ISO time or -1h (exclusive); default now."),
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant."),
    out: Path = typer.Option(..., "--out", help="Output file."),
    config: Path | None = typer.Option(None, "--config", help="YAML settings file."),
) -> None:
    """Stream the raw usage rows of a time range to a CSV or Parquet file."""
    if fmt not in export_mod.FORMATS:
        raise UserError(f"--format: {fmt!r} is not one of {', '.join(export_mod.FORMATS)}")
    try:
        q = export_mod.ExportQuery(
            parse_time(start, "from"),
            parse_time(end, "to") if end else datetime.now(UTC),
            tenant or None,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    settings = load_settings(config)
    from pipeline.store import Store

    with Store.open(settings.dsn) as store:  # ConfigError names the worker holding chdb
        rows = export_mod.export(store, q, fmt, out)
    typer.echo(f"{rows} rows written to {out}", err=True)


def digest_command(
    day: str | None = typer.Option(None, "--day", help="UTC day YYYY-MM-DD; default yesterday."),
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant."),
    fmt: str = typer.Option("html", "--format", help="html, slack or json."),
    out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
    post: str | None = typer.Option(None, "--post", help="POST the slack/json payload to a URL."),
    config: Path | None = typer.Option(None, "--config", help="YAML settings file."),
) -> None:
    """Daily digest: top spend by feature, user and model, anomalies, recommendations."""
    if fmt not in ("html", "slack", "json"):
        raise UserError(f"--format: {fmt!r} is not one of html, slack, json")
    try:
        the_day = date.fromisoformat(day) if day else datetime.now(UTC).date() - timedelta(days=1)
    except ValueError:
        raise UserError(f"--day: {day!r} is not YYYY-MM-DD") from None
    settings = load_settings(config)
    from pipeline.store import Store

    with Store.open(settings.dsn) as store:
        d = digest_mod.build_digest(store, the_day, tenant or None)
    if fmt == "html":
        text = digest_mod.render_html(d)
        payload = None
    else:
        payload = digest_mod.slack_payload(d) if fmt == "slack" else d.as_json()
        text = json.dumps(payload, indent=2)
    if post:
        if payload is None:
            raise UserError("--post needs --format slack or json")
        r = httpx.post(post, json=payload, timeout=30)
        if r.status_code >= 300:
            raise UserError(f"--post {post}: HTTP {r.status_code}: {r.text[:200]}")
    if out is not None:
        out.write_text(text)
    elif not post:
        typer.echo(text)
