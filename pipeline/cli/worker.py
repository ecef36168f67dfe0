"""`tokenpipe worker`: run the stream processors and the HTTP endpoints."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.config import load_settings


def worker_command(
    config: Path | None = typer.Option(None, "--config", help="YAML settings file."),
    web_port: int | None = typer.Option(None, "--web-port", help="HTTP port (TOKENPIPE_WEB_PORT)."),
    migrate: bool = typer.Option(
        True, "--migrate/--no-migrate", help="Apply pending ClickHouse migrations at start."
    ),
) -> None:
    """Run a worker until interrupted (costing, ClickHouse sink, /v1/events, /metrics)."""
    from pipeline.worker import run_worker

    settings = load_settings(config, web_port=web_port)
    run_worker(settings, migrate=migrate)
