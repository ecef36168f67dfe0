"""`tokenpipe budgets set|list|show|delete`: manage budgets through the running worker.

Definitions live in the worker's ``budgets`` topic and ledger, so every command
talks to the worker's HTTP API (``--url``, default ``http://<web_host>:<web_port>``).
``set`` takes a BudgetDefinition as a JSON or YAML file (``-`` for stdin).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml

from pipeline.config import load_settings
from pipeline.errors import UserError

app = typer.Typer(help="Create, list, show and delete budgets.", no_args_is_help=True)

UrlOption = typer.Option(None, "--url", help="Worker URL (default: from settings).")


def _base(url: str | None) -> str:
    if url:
        return url.rstrip("/")
    s = load_settings()
    return f"http://{s.web_host}:{s.web_port}"


def _call(method: str, url: str, body: Any = None) -> Any:
    try:
        r = httpx.request(method, url, json=body, timeout=30)
    except httpx.TransportError as exc:
        raise UserError(f"no worker answered at {url} ({exc}); start `tokenpipe worker`") from None
    if r.status_code >= 400:
        try:
            msg = r.json().get("error", r.text)
        except ValueError:
            msg = r.text
        raise UserError(f"{r.status_code}: {msg}")
    return r.json()


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


@app.command("set")
def set_budget(
    file: Path = typer.Argument(..., help="BudgetDefinition as JSON or YAML ('-': stdin)."),
    url: str | None = UrlOption,
) -> None:
    """Create or replace a budget."""
    text = sys.stdin.read() if str(file) == "-" else file.read_text()
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{file}: not JSON/YAML: {exc}") from None
    if not isinstance(body, dict) or "id" not in body:
        raise UserError(f"{file}: expected a mapping with an 'id'")
    _echo(_call("PUT", f"{_base(url)}/v1/budgets/{body['id']}", body))


@app.command("list")
def list_budgets(url: str | None = UrlOption) -> None:
    """List every budget definition."""
    _echo(_call("GET", f"{_base(url)}/v1/budgets"))


@app.command("show")
def show_budget(budget_id: str, url: str | None = UrlOption) -> None:
    """A budget's definition and its current status (spent, reserved, remaining)."""
    base = _base(url)
    _echo(
        {
            "definition": _call("GET", f"{base}/v1/budgets/{budget_id}"),
            "status": _call("GET", f"{base}/v1/budgets/{budget_id}/status"),
        }
    )


@app.command("delete")
def delete_budget(budget_id: str, url: str | None = UrlOption) -> None:
    """Delete a budget (its ledger stops counting; history stays in ClickHouse)."""
    _echo(_call("DELETE", f"{_base(url)}/v1/budgets/{budget_id}"))
