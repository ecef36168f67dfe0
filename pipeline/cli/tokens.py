"""`tokenpipe tokens` — count prompt tokens and estimate a request before sending it.

``count`` counts ``--text`` or a chat ``--messages`` file (JSON list of OpenAI-style
messages, optional ``--tools`` JSON list of tool definitions). ``estimate`` adds the
worst-case and expected output and cost. ``--json`` prints one JSON object.
Malformed input files raise ``UserError`` naming the file and the item/field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipeline.costing.tokens import TokenCount, count_messages, count_text, validate_messages
from pipeline.errors import UserError

app = typer.Typer(
    help="Count tokens and estimate requests before sending them.", no_args_is_help=True
)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model id, e.g. gpt-4o.")]
MessagesOpt = Annotated[
    Path | None, typer.Option("--messages", help="JSON file: list of chat messages.")
]
ToolsOpt = Annotated[
    Path | None, typer.Option("--tools", help="JSON file: list of tool definitions.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc


def load_messages(path: Path) -> list[dict[str, Any]]:
    """Read and validate a messages file; errors read ``FILE: messages[i].field: ...``."""
    data = _read_json(path)
    try:
        return validate_messages(data)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from exc


def load_tools(path: Path) -> list[dict[str, Any]]:
    """Read a tools file: a JSON list of objects (``{"type": "function", "function": …}``)."""
    data = _read_json(path)
    if not isinstance(data, list):
        raise UserError(f"{path}: tools: expected a list, got {type(data).__name__}")
    for i, tool in enumerate(data):
        if not isinstance(tool, dict):
            raise UserError(f"{path}: tools[{i}]: expected an object, got {type(tool).__name__}")
        fn = tool.get("function", tool)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise UserError(f"{path}: tools[{i}].function.name: missing or not a string")
    return data


def _count_dict(count: TokenCount) -> dict[str, Any]:
    return {
        "input_tokens": count.tokens,
        "exact": count.exact,
        "encoding": count.encoding,
        "method": count.method,
    }


@app.command("count")
def count_command(
    model: ModelOpt,
    text: Annotated[str | None, typer.Option("--text", help="Text to count.")] = None,
    messages: MessagesOpt = None,
    tools: ToolsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Count the tokens of a text or of a chat request's prompt."""
    if (text is None) == (messages is None):
        raise UserError("give exactly one of --text or --messages")
    if text is not None:
        if tools is not None:
            raise UserError("--tools needs --messages")
        count = count_text(text, model)
    else:
        assert messages is not None
        msgs = load_messages(messages)
        tool_defs = load_tools(tools) if tools is not None else None
        count = count_messages(msgs, model, tool_defs)
    result = {"model": model, **_count_dict(count)}
    if as_json:
        typer.echo(json.dumps(result))
        return
    label = "exact" if count.exact else "estimate"
    Console().print(
        f"[bold]{count.tokens}[/bold] input tokens for {model} ({label}; "
        f"encoding {count.encoding}; {count.method})"
    )


@app.command("estimate")
def estimate_command(
    model: ModelOpt,
    messages: Annotated[Path, typer.Option("--messages", help="JSON file: chat messages.")],
    tools: ToolsOpt = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Request's max output tokens.")
    ] = None,
    expected_output: Annotated[
        int | None, typer.Option("--expected-output", help="Expected output tokens.")
    ] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="Provider id.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pre-flight estimate: input tokens, worst-case/expected output and cost."""
    from pipeline.costing.estimate import estimate_request  # pricing is heavy; load on use

    msgs = load_messages(messages)
    tool_defs = load_tools(tools) if tools is not None else None
    est = estimate_request(
        model,
        msgs,
        tools=tool_defs,
        max_tokens=max_tokens,
        provider=provider,
        expected_output_tokens=expected_output,
    )
    if as_json:
        d = est.to_dict()
        d["exact"] = est.input_exact
        typer.echo(json.dumps(d))
        return
    table = Table(title=f"Pre-flight estimate for {model}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("input tokens", f"{est.input_tokens} ({'exact' if est.input_exact else 'est.'})")
    table.add_row("worst-case input tokens", str(est.worst_case_input_tokens))
    table.add_row(
        "worst-case output tokens", f"{est.worst_case_output_tokens} ({est.output_limit_source})"
    )
    table.add_row("expected output tokens", str(est.expected_output_tokens))
    if est.priced:
        table.add_row("worst-case cost (USD)", f"{est.worst_case_cost_usd}")
        table.add_row("expected cost (USD)", f"{est.expected_cost_usd}")
    else:
        table.add_row("cost", f"not priced: {est.price_reason}")
    Console().print(table)
