"""`tokenpipe tokens count|estimate` through the real CLI app."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipeline.cli import main as cli_main
from pipeline.cli.main import app
from pipeline.costing.tokens import count_messages, count_text
from pipeline.errors import UserError

runner = CliRunner()
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string", "description": "City"}},
            },
        },
    }
]


def _write(tmp_path: Path, name: str, data: Any) -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return p


def test_count_text_json() -> None:
    r = runner.invoke(
        app, ["tokens", "count", "--model", "gpt-4o", "--text", "hello world", "--json"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["input_tokens"] == 2
    assert out["exact"] is True
    assert out["encoding"] == "o200k_base"
    assert out["method"] == "tiktoken"


def test_count_text_estimate_human() -> None:
    r = runner.invoke(app, ["tokens", "count", "-m", "claude-sonnet-4-5", "--text", "hello world"])
    assert r.exit_code == 0, r.output
    expected = count_text("hello world", "claude-sonnet-4-5").tokens
    assert f"{expected} input tokens" in r.stdout
    assert "estimate" in r.stdout


def test_count_messages_with_tools(tmp_path: Path) -> None:
    m = _write(tmp_path, "m.json", MESSAGES)
    t = _write(tmp_path, "t.json", TOOLS)
    r = runner.invoke(
        app,
        ["tokens", "count", "--model", "gpt-4", "--messages", str(m), "--tools", str(t), "--json"],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["input_tokens"] == count_messages(MESSAGES, "gpt-4", TOOLS).tokens
    assert out["exact"] is False


def test_count_messages_human(tmp_path: Path) -> None:
    m = _write(tmp_path, "m.json", MESSAGES)
    r = runner.invoke(app, ["tokens", "count", "--model", "gpt-4o", "--messages", str(m)])
    assert r.exit_code == 0, r.output
    assert f"{count_messages(MESSAGES, 'gpt-4o').tokens} input tokens" in r.stdout
    assert "exact" in r.stdout


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ('[{"role": ', r"invalid JSON at line 1"),
        ({"messages": []}, r"messages: expected a list"),
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"content": "c"}],
            r"messages\[2\]\.role: missing",
        ),
        ([{"role": "user", "content": {"text": "x"}}], r"messages\[0\]\.content: expected"),
        (
            [{"role": "user", "content": [{"type": "text", "text": 1}]}],
            r"messages\[0\]\.content\[0\]\.text",
        ),
    ],
)
def test_malformed_messages_file_is_a_user_error(tmp_path: Path, content: Any, error: str) -> None:
    m = _write(tmp_path, "bad.json", content)
    r = runner.invoke(app, ["tokens", "count", "--model", "gpt-4o", "--messages", str(m)])
    assert isinstance(r.exception, UserError)
    assert str(m) in str(r.exception)
    assert re.search(error, str(r.exception)), str(r.exception)


def test_malformed_tools_file(tmp_path: Path) -> None:
    m = _write(tmp_path, "m.json", MESSAGES)
    t = _write(tmp_path, "t.json", [{"type": "function", "function": {}}])
    r = runner.invoke(
        app, ["tokens", "count", "--model", "gpt-4o", "--messages", str(m), "--tools", str(t)]
    )
    assert isinstance(r.exception, UserError)
    assert "tools[0].function.name" in str(r.exception)


def test_missing_file_and_bad_option_combinations(tmp_path: Path) -> None:
    r = runner.invoke(
        app, ["tokens", "count", "--model", "gpt-4o", "--messages", str(tmp_path / "nope.json")]
    )
    assert isinstance(r.exception, UserError) and "nope.json" in str(r.exception)
    r = runner.invoke(app, ["tokens", "count", "--model", "gpt-4o"])
    assert isinstance(r.exception, UserError) and "--text or --messages" in str(r.exception)


def test_main_prints_user_error_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    m = _write(tmp_path, "bad.json", [{"content": "x"}])
    monkeypatch.setattr(
        sys, "argv", ["tokenpipe", "tokens", "count", "--model", "gpt-4o", "--messages", str(m)]
    )
    with pytest.raises(SystemExit) as info:
        cli_main.main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "messages[0].role: missing" in err
    assert "Traceback" not in err


def test_estimate_json(tmp_path: Path) -> None:
    m = _write(tmp_path, "m.json", MESSAGES)
    r = runner.invoke(
        app,
        [
            "tokens",
            "estimate",
            "--model",
            "gpt-4o",
            "--messages",
            str(m),
            "--max-tokens",
            "300",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["input_tokens"] == count_messages(MESSAGES, "gpt-4o").tokens
    assert out["exact"] is True
    assert out["worst_case_output_tokens"] == 300
    assert out["priced"] is True
    assert float(out["worst_case_cost_usd"]) > float(out["expected_cost_usd"]) * 0.99


def test_estimate_human(tmp_path: Path) -> None:
    m = _write(tmp_path, "m.json", MESSAGES)
    r = runner.invoke(
        app, ["tokens", "estimate", "--model", "claude-sonnet-4-5", "--messages", str(m)]
    )
    assert r.exit_code == 0, r.output
    assert "worst-case cost" in r.stdout
    assert "64000" in r.stdout
