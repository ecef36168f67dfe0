"""`tokenpipe prices` commands (placeholder until the costing library lands)."""

from __future__ import annotations

import typer

app = typer.Typer(help="prices commands", no_args_is_help=True)
