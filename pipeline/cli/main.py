"""Entry point of the ``tokenpipe`` console script.

Each command group lives in its own module and exposes a ``typer.Typer`` named
``app`` (a group) or a function registered here (a single command). Errors that
are the user's (bad input, bad configuration) are raised as ``UserError`` and
printed as one line without a traceback; the exit code is 2.
"""

from __future__ import annotations

import sys

import typer

from pipeline.cli import (
    budgets,
    dashboards,
    demo,
    emit,
    export,
    migrate,
    prices,
    report,
    tokens,
    worker,
)
from pipeline.errors import UserError

app = typer.Typer(
    name="tokenpipe",
    help="Meter and control LLM token usage and spend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(prices.app, name="prices")
app.add_typer(tokens.app, name="tokens")
app.add_typer(dashboards.app, name="dashboards")
app.add_typer(budgets.app, name="budgets")
app.command("migrate")(migrate.migrate_command)
app.command("worker")(worker.worker_command)
app.command("emit")(emit.emit_command)
app.command("report")(report.report_command)
app.command("demo")(demo.demo_command)
app.command("export")(export.export_command)
app.command("digest")(export.digest_command)


def main() -> None:
    """Run the CLI; user errors become a one-line message and exit code 2."""
    try:
        app()
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
