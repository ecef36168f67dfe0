"""`tokenpipe emit`: send synthetic usage traffic to Kafka."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pipeline.config import load_settings
from pipeline.demo import DemoConfig
from pipeline.errors import UserError


def emit_command(
    demo: int = typer.Option(..., "--demo", help="Number of synthetic events to send."),
    rate: float | None = typer.Option(None, "--rate", help="Events per second (default: max)."),
    duplicates: float = typer.Option(0.01, help="Share of exact resends (dedup test)."),
    malformed: float = typer.Option(0.005, help="Share of malformed events (DLQ test)."),
    span_hours: float = typer.Option(24.0, help="Spread event times over the last N hours."),
    seed: int = typer.Option(7, help="Random seed (same seed, same traffic)."),
    config: Path | None = typer.Option(None, "--config", help="YAML settings file."),
) -> None:
    """Send realistic demo traffic: tenants, users, features, models, cache hits, reasoning."""
    from pipeline.emitter_demo import emit_demo

    if demo < 1:
        raise UserError("--demo: must be at least 1")
    if rate is not None and rate <= 0:
        raise UserError("--rate: must be positive")
    if not (0 <= duplicates < 1 and 0 <= malformed < 1):
        raise UserError("--duplicates/--malformed: must be shares in [0, 1)")
    settings = load_settings(config)
    cfg = DemoConfig(
        seed=seed,
        span=timedelta(hours=span_hours),
        duplicate_share=duplicates,
        malformed_share=malformed,
    )
    console = Console()
    with Progress(
        TextColumn("emitting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("emit", total=demo)
        stats = asyncio.run(
            emit_demo(settings, demo, cfg, rate=rate, progress=lambda k: bar.advance(task, k))
        )
    console.print(
        f"sent [bold]{stats.events}[/bold] events (+{stats.duplicates} duplicates, "
        f"{stats.malformed} malformed) in {stats.messages} messages to "
        f"{settings.topic('usage.events')} in {stats.seconds:.1f}s"
    )
