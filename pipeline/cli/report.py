"""`tokenpipe report`: spend and tokens by a dimension, from ClickHouse.

With an embedded store the running worker owns it (chDB: one process per data
path), so the report asks the worker over HTTP; with no worker answering it
opens the store itself.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from pipeline import report
from pipeline.config import Settings, load_settings
from pipeline.errors import UserError


def fetch_summary(
    settings: Settings, q: report.SummaryQuery, raw: dict[str, Any]
) -> report.Summary:
    """From the worker's HTTP API when one answers, else straight from the store."""
    url = f"http://{settings.web_host}:{settings.web_port}/v1/usage/summary"
    try:
        r = httpx.get(url, params={k: v for k, v in raw.items() if v}, timeout=30)
    except httpx.TransportError:
        r = None
    if r is not None and r.status_code == 200:
        return report.Summary.from_json(r.json())
    if r is not None and r.status_code == 400:
        raise UserError(r.json().get("error", r.text))
    from pipeline.store import Store

    with Store.open(settings.dsn) as store:
        return report.summary(store, q)


def render(summary: report.Summary, console: Console) -> None:
    table = Table(title=f"usage by {summary.by}", show_footer=True)
    total = summary.total
    cols = [
        ("calls", "calls"),
        ("input_tokens", "input"),
        ("cache_read_tokens", "cached"),
        ("output_tokens", "output"),
        ("reasoning_tokens", "reasoning"),
        ("cost_usd", "cost (USD)"),
        ("unpriced_calls", "unpriced"),
    ]
    table.add_column(summary.by, footer="total")
    for key, label in cols:
        table.add_column(label, justify="right", footer=_fmt(key, total.get(key, 0)))
    for row in summary.rows:
        table.add_row(str(row["key"]) or "—", *(_fmt(k, row[k]) for k, _ in cols))
    console.print(table)


def render_files(
    settings: Settings,
    q: report.SummaryQuery,
    html_out: Path | None,
    png_out: Path | None,
    dashboards: list[str] | None,
) -> None:
    """Draw the dashboards to HTML and/or PNG from the store (see dashboards/render.py)."""
    from dashboards import render
    from pipeline.store import Store

    with Store.open(settings.dsn) as store:
        for out, fmt in ((html_out, "html"), (png_out, "png")):
            if out is None:
                continue
            try:
                path = render.render_report(store, out, fmt, dashboards, q.start, q.end)
            except ValueError as exc:
                raise UserError(str(exc)) from None
            typer.echo(f"wrote {path}")


def _fmt(key: str, value: Any) -> str:
    if key == "cost_usd":
        return f"{Decimal(value):,.4f}"
    return f"{int(value):,}"


def report_command(
    by: str = typer.Option("model", "--by", help=f"One of: {', '.join(report.GROUPABLE)}."),
    start: str | None = typer.Option(None, "--from", help="ISO time or -7d/-12h/-30m."),
    end: str | None = typer.Option(None, "--to", help="ISO time or -1h (exclusive)."),
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="TOKENPIPE_API_KEY", help="Key for a worker with api_keys_file."
    ),
    config: Path | None = typer.Option(None, "--config", help="YAML settings file."),
    html_out: Path | None = typer.Option(
        None, "--html", help="Write the dashboards as one self-contained HTML page."
    ),
    png_out: Path | None = typer.Option(None, "--png", help="Write the dashboards as one PNG."),
    dashboard: list[str] | None = typer.Option(
        None, "--dashboard", help="Dashboard uid for --html/--png (repeatable; default all)."
    ),
) -> None:
    """Calls, tokens and cost grouped by model, user, feature, tenant or team.

    ``--html``/``--png`` draw the Grafana dashboards' panels from the same SQL,
    offline. They read the store directly: with the embedded store, stop the
    worker first (chDB lets one process hold the data path).
    """
    try:
        q = report.SummaryQuery.from_strings(by, start, end, tenant)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    settings = load_settings(config)
    if html_out or png_out:
        render_files(settings, q, html_out, png_out, dashboard or None)
        return
    summary = fetch_summary(settings, q, {"by": by, "from": start, "to": end, "tenant": tenant})
    if as_json:
        typer.echo(json.dumps(summary.as_json(), indent=2))
    else:
        render(summary, Console())
