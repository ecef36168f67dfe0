"""`tokenpipe prices` CLI: check / list / update, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No saved catalog or overrides from the environment leak into these tests.
    monkeypatch.setenv("TOKENPIPE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TOKENPIPE_PRICE_OVERRIDES", raising=False)
    monkeypatch.delenv("TOKENPIPE_PRICE_CATALOG", raising=False)


def check(*args: str):
    return runner.invoke(app, ["prices", "check", *args])


def test_check_json() -> None:
    # gpt-4o: 93*2.5e-6=0.0002325 + 1024*1.25e-6=0.00128 + 46*10e-6=0.00046 -> 0.0019725
    res = check(
        "gpt-4o",
        "--input",
        "1117",
        "--output",
        "46",
        "--cached",
        "1024",
        "--at",
        "2025-05-01T00:00:00Z",
        "--json",
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["priced"] is True
    assert data["cost_usd"] == "0.001972500"
    assert data["input_cost_usd"] == "0.000232500"
    assert data["cache_read_cost_usd"] == "0.001280000"
    assert data["output_cost_usd"] == "0.000460000"
    assert (data["provider"], data["model"]) == ("openai", "gpt-4o")
    assert data["price_version"].startswith("genai-prices")


def test_check_table_with_reasoning_and_history() -> None:
    # o3 before the 2025-06-10 cut: $10 in, $40 out: 1000*10e-6 + 2000*40e-6 = 0.09
    res = check(
        "o3",
        "--provider",
        "openai",
        "--input",
        "1000",
        "--output",
        "2000",
        "--reasoning",
        "1500",
        "--at",
        "2025-06-01T12:00:00+00:00",
    )
    assert res.exit_code == 0, res.output
    assert "0.090000000" in res.stdout and "reasoning" in res.stdout


def test_check_cache_write() -> None:
    # claude-3-5-haiku: 2000*0.8e-6 + 3000*0.08e-6 + 5000*1e-6 + 1000*4e-6 = 0.01084
    res = check(
        "claude-3-5-haiku-latest",
        "--provider",
        "anthropic",
        "--input",
        "10000",
        "--cached",
        "3000",
        "--cache-write",
        "5000",
        "--output",
        "1000",
        "--at",
        "2025-09-01T00:00:00Z",
        "--json",
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["cost_usd"] == "0.010840000"


def test_unknown_model_exit_1() -> None:
    res = check("no-such-model", "--input", "1", "--output", "1", "--json")
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["priced"] is False and "unknown model" in data["reason"]
    assert data["cost_usd"] == "0.000000000"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "-1", "--output", "1"], "--input must not be negative"),
        (["--input", "1", "--output", "1", "--provider", "nosuch"], "unknown provider"),
        (["--input", "1", "--output", "1", "--at", "2025-01-01T00:00:00"], "no timezone"),
        (["--input", "1", "--output", "1", "--at", "yesterday"], "not an ISO time"),
        (["--input", "10", "--output", "1", "--cached", "11"], "--cached"),
        (["--input", "10", "--output", "1", "--reasoning", "2"], "--reasoning"),
    ],
)
def test_user_errors_via_main(args: list[str], message: str) -> None:
    """Through the real console entry point: one line on stderr, exit 2, no traceback."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pipeline.cli.main import main; main()",
            "prices",
            "check",
            "gpt-4o",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_list_provider() -> None:
    res = runner.invoke(app, ["prices", "list", "--provider", "google", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["model"]: r for r in json.loads(res.stdout)}
    assert rows["gemini-2.5-pro"]["input_mtok"] == "1.25" and rows["gemini-2.5-pro"]["tiered"]
    res = runner.invoke(app, ["prices", "list", "--provider", "anthropic"])
    assert res.exit_code == 0 and "anthropic" in res.stdout


def test_list_with_overrides(tmp_path: Path) -> None:
    ov = tmp_path / "ov.yaml"
    ov.write_text(
        "models:\n  - provider: acme\n    model: acme-1\n    prices: {input: 1, output: 2}\n"
    )
    res = runner.invoke(
        app, ["prices", "list", "--provider", "acme", "--overrides", str(ov), "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["price_source"] == "override"


def test_update_offline_fails_gracefully() -> None:
    # Port 9 on localhost refuses at once: the same path as "no network".
    res = runner.invoke(
        app, ["prices", "update", "--url", "http://127.0.0.1:9/data.json", "--timeout", "2"]
    )
    assert res.exit_code == 1
    assert "could not fetch" in res.stderr and "Nothing changed" in res.stderr


def test_update_from_file_then_used(tmp_path: Path) -> None:
    data = [
        {
            "id": "openai",
            "name": "OpenAI",
            "api_pattern": "https://api\\.openai\\.com",
            "model_match": {"starts_with": "gpt-"},
            "models": [
                {
                    "id": "gpt-4o",
                    "match": {"equals": "gpt-4o"},
                    "prices": {"input_mtok": 3, "output_mtok": 12},
                }
            ],
        }
    ]
    src = tmp_path / "data.json"
    src.write_text(json.dumps(data))
    res = runner.invoke(app, ["prices", "update", "--from-file", str(src)])
    assert res.exit_code == 0, res.output
    # The saved catalog is now the default: 1000*3e-6 + 1000*12e-6 = 0.015
    res = check("gpt-4o", "--input", "1000", "--output", "1000", "--json")
    assert json.loads(res.stdout)["cost_usd"] == "0.015000000"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = runner.invoke(app, ["prices", "update", "--from-file", str(bad)])
    assert res.exit_code != 0
