"""`tokenpipe prices`: check what a usage costs, list the catalog, refresh it.

Prices come from genai-prices (the snapshot bundled with the installed package, or a
newer ``data.json`` saved by ``prices update``) with local overrides on top
(``--overrides`` or ``TOKENPIPE_PRICE_OVERRIDES``). Bad input raises ``UserError``
(exit 2); a model the catalog does not know prints ``priced: false`` and exits 1.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from genai_prices.update_prices import DEFAULT_UPDATE_URL
from rich.console import Console
from rich.table import Table

from pipeline.config import default_data_dir, saved_catalog_path
from pipeline.costing.pricing import PriceCatalog, PriceResult
from pipeline.costing.usage import TokenUsage
from pipeline.errors import UserError

app = typer.Typer(
    help="Check prices of token usage, list the price catalog, refresh it.",
    no_args_is_help=True,
)

#: The URL genai-prices' own auto-updater (``UpdatePrices``) fetches.
CATALOG_URL = DEFAULT_UPDATE_URL


def default_catalog_path() -> Path:
    """Where ``prices update`` saves the catalog: ``<data_dir>/prices/genai-prices.json``."""
    data_dir = os.environ.get("TOKENPIPE_DATA_DIR")
    return saved_catalog_path(Path(data_dir) if data_dir else default_data_dir())


OverridesOpt = Annotated[
    Path | None,
    typer.Option(
        "--overrides",
        envvar="TOKENPIPE_PRICE_OVERRIDES",
        help="YAML file of price overrides, aliases and discounts.",
        dir_okay=False,
    ),
]
CatalogOpt = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        envvar="TOKENPIPE_PRICE_CATALOG",
        help="genai-prices data.json to use; default: the file `prices update` saved, "
        "if any, else the snapshot bundled with genai-prices.",
        dir_okay=False,
    ),
]


def _catalog(overrides: Path | None, catalog: Path | None) -> PriceCatalog:
    if catalog is None and default_catalog_path().is_file():
        catalog = default_catalog_path()
    return PriceCatalog(overrides, catalog_data=catalog)


def _money(value: Decimal) -> str:
    return f"{value:.9f}"


def _per_million(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.normalize():f}"


@app.command("check")
def check(
    model: Annotated[str, typer.Argument(help="Model name as the app reports it.")],
    input_tokens: Annotated[
        int, typer.Option("--input", help="Total input tokens, cached tokens included.")
    ],
    output_tokens: Annotated[
        int, typer.Option("--output", help="Total output tokens, reasoning included.")
    ],
    provider: Annotated[
        str | None, typer.Option("--provider", help="Provider id (default: inferred).")
    ] = None,
    cached: Annotated[
        int, typer.Option("--cached", help="Input tokens read from the prompt cache.")
    ] = 0,
    cache_write: Annotated[
        int, typer.Option("--cache-write", help="Input tokens written to the prompt cache.")
    ] = 0,
    reasoning: Annotated[
        int, typer.Option("--reasoning", help="Output tokens spent on reasoning.")
    ] = 0,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="ISO time with UTC offset, e.g. 2025-05-01T12:00:00Z; "
            "default now. Prices in force at that time are used.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
    overrides: OverridesOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """Print what one usage of MODEL costs, part by part (exit 1 if it cannot be priced)."""
    for option, value in (
        ("--input", input_tokens),
        ("--output", output_tokens),
        ("--cached", cached),
        ("--cache-write", cache_write),
        ("--reasoning", reasoning),
    ):
        if value < 0:
            raise UserError(f"{option} must not be negative, got {value}")
    if cached + cache_write > input_tokens:
        raise UserError(
            f"--cached + --cache-write ({cached} + {cache_write}) exceed --input "
            f"({input_tokens}); --input is the total input, cached tokens included"
        )
    if reasoning > output_tokens:
        raise UserError(
            f"--reasoning ({reasoning}) exceeds --output ({output_tokens}); "
            "--output is the total output, reasoning included"
        )
    when = _parse_at(at)
    usage = TokenUsage(input_tokens, output_tokens, cached, cache_write, reasoning)
    result = _catalog(overrides, catalog).price(model, usage, when, provider)
    if not result.priced and result.reason and result.reason.startswith("unknown provider"):
        raise UserError(f"--provider: {result.reason}")
    if as_json:
        typer.echo(json.dumps(_result_json(result, usage, when), indent=2))
    else:
        _print_result(result, usage, when)
    if not result.priced:
        raise typer.Exit(1)


def _parse_at(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise UserError(f"--at: not an ISO time: {at!r}") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise UserError(f"--at: {at!r} has no timezone; add Z or an offset like +00:00")
    return when


def _result_json(result: PriceResult, usage: TokenUsage, when: datetime) -> dict[str, object]:
    return {
        "priced": result.priced,
        "cost_usd": _money(result.cost_usd),
        "input_cost_usd": _money(result.input_cost_usd),
        "cache_read_cost_usd": _money(result.cache_read_cost_usd),
        "cache_write_cost_usd": _money(result.cache_write_cost_usd),
        "output_cost_usd": _money(result.output_cost_usd),
        "reasoning_cost_usd": _money(result.reasoning_cost_usd),
        "request_cost_usd": _money(result.request_cost_usd),
        "provider": result.provider,
        "model": result.model,
        "price_source": result.price_source,
        "price_version": result.price_version,
        "reason": result.reason,
        "at": when.isoformat(),
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        },
    }


def _print_result(result: PriceResult, usage: TokenUsage, when: datetime) -> None:
    console = Console()
    if not result.priced:
        console.print(f"priced: false — {result.reason}")
        console.print(f"catalog: {result.price_version}")
        return
    table = Table(title=f"{result.provider}/{result.model} at {when.isoformat()}")
    table.add_column("part")
    table.add_column("tokens", justify="right")
    table.add_column("cost (USD)", justify="right")
    table.add_row(
        "input (uncached)", str(usage.uncached_input_tokens), _money(result.input_cost_usd)
    )
    table.add_row("cache read", str(usage.cache_read_tokens), _money(result.cache_read_cost_usd))
    table.add_row("cache write", str(usage.cache_write_tokens), _money(result.cache_write_cost_usd))
    table.add_row("output", str(usage.output_tokens), _money(result.output_cost_usd))
    table.add_row(
        "  of which reasoning", str(usage.reasoning_tokens), _money(result.reasoning_cost_usd)
    )
    if result.request_cost_usd:
        table.add_row("request fee", "", _money(result.request_cost_usd))
    table.add_row("total", str(usage.total_tokens), _money(result.cost_usd), style="bold")
    console.print(table)
    console.print(f"priced: true; source: {result.price_source} ({result.price_version})")


@app.command("list")
def list_prices(
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only this provider's models.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
    overrides: OverridesOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """List models and their current prices in USD per million tokens."""
    cat = _catalog(overrides, catalog)
    rows = cat.models(provider)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "provider": r.provider,
                        "model": r.model,
                        "name": r.name,
                        "input_mtok": None if r.input_mtok is None else str(r.input_mtok),
                        "cache_read_mtok": None
                        if r.cache_read_mtok is None
                        else str(r.cache_read_mtok),
                        "cache_write_mtok": None
                        if r.cache_write_mtok is None
                        else str(r.cache_write_mtok),
                        "output_mtok": None if r.output_mtok is None else str(r.output_mtok),
                        "tiered": r.tiered,
                        "dated": r.dated,
                        "price_source": r.price_source,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    table = Table(title=f"Prices in USD per million tokens — {cat.version}")
    table.add_column("provider", overflow="fold")
    table.add_column("model", overflow="fold", min_width=18)
    for col in ("input", "cache read", "cache write", "output"):
        table.add_column(col, justify="right")
    table.add_column("notes", overflow="fold")
    for r in rows:
        notes = ", ".join(
            n
            for n, on in (
                ("long-context tiers", r.tiered),
                ("dated prices", r.dated),
                ("override", r.price_source == "override"),
            )
            if on
        )
        table.add_row(
            r.provider,
            r.model,
            _per_million(r.input_mtok),
            _per_million(r.cache_read_mtok),
            _per_million(r.cache_write_mtok),
            _per_million(r.output_mtok),
            notes,
        )
    Console().print(table)


@app.command("update")
def update(
    url: Annotated[str, typer.Option("--url", help="Where to fetch data.json from.")] = CATALOG_URL,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            help="Install a data.json fetched elsewhere (air-gapped).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    dest: Annotated[
        Path | None,
        typer.Option(
            "--dest", help="Where to save it (default: <data_dir>/prices/genai-prices.json)."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds.")] = 10.0,
) -> None:
    """Refresh the price catalog from genai-prices' published data.json.

    Needs network access to raw.githubusercontent.com. Without it (CI, air-gapped
    hosts) the fetch fails with a clear message, exit code 1, and nothing changes:
    the bundled snapshot of the installed genai-prices (or the last saved file) stays
    in use. Use --from-file to install a data.json copied in by other means; upgrading
    the genai-prices package also refreshes the bundled snapshot.
    """
    target = dest or default_catalog_path()
    if from_file is not None:
        payload = from_file.read_bytes()
        origin = str(from_file)
    else:
        import httpx

        try:
            response = httpx.get(url, timeout=timeout, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            current = (
                "saved catalog " + str(target)
                if target.is_file()
                else ("bundled snapshot " + PriceCatalog().version)
            )
            typer.echo(
                f"error: could not fetch the price catalog from {url}: {exc}. "
                f"Nothing changed; still using the {current}.",
                err=True,
            )
            raise typer.Exit(1) from None
        payload = response.content
        origin = url
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".prices-", suffix=".json")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        fresh = PriceCatalog(catalog_data=tmp)  # validates; ConfigError if it is not a catalog
        count = len(fresh.models())
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    typer.echo(f"saved {count} model prices from {origin} to {target}")
