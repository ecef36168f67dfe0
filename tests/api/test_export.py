"""export(): CSV and Parquet of a range and tenant, streamed in batches."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline import export as export_mod
from pipeline.export import ExportQuery, export
from pipeline.migrate import DECLARED_SCHEMA
from tests.api.helpers import NOW, insert_two_tenants

ALL = ExportQuery(NOW - timedelta(days=1), NOW)


def test_parquet_keeps_types_and_filters_tenant(store, tmp_path: Path) -> None:
    insert_two_tenants(store)
    out = tmp_path / "acme.parquet"
    assert export(store, ExportQuery(ALL.start, ALL.end, "acme"), "parquet", out) == 4
    table = pq.read_table(out)
    assert table.column_names == [c for c, _ in DECLARED_SCHEMA["usage_raw"]]
    assert set(table.column("tenant").to_pylist()) == {"acme"}
    assert sum(table.column("cost_usd").to_pylist()) == Decimal("6.5")
    assert table.column("attributes").to_pylist()[0] == [("env", "test")]


def test_csv_range_is_half_open_and_batches_stream(store, monkeypatch) -> None:
    insert_two_tenants(store)
    monkeypatch.setattr(export_mod, "BLOCK_ROWS", 2)  # several batches, one header
    buf = io.BytesIO()
    start = NOW - timedelta(hours=5)  # a1 and g1 are exactly at start: included
    end = start + timedelta(minutes=70)  # a2 exactly at end: excluded
    assert export(store, ExportQuery(start, end), "csv", buf) == 3
    rows = list(csv.DictReader(io.StringIO(buf.getvalue().decode())))
    assert [r["event_id"] for r in rows] == ["a1", "g1", "g2"]
    assert json.loads(rows[0]["attributes"]) == {"env": "test"}
    assert Decimal(rows[1]["cost_usd"]) == Decimal("100")


def test_empty_range_writes_header_only(store, tmp_path: Path) -> None:
    out = tmp_path / "empty.csv"
    assert export(store, ALL, "csv", out) == 0
    assert out.read_text().splitlines()[0].startswith('"event_id","ts"')
    pq_out = tmp_path / "empty.parquet"
    assert export(store, ALL, "parquet", pq_out) == 0
    assert pq.read_table(pq_out).num_rows == 0


def test_unknown_format(store) -> None:
    with pytest.raises(ValueError, match="format"):
        export(store, ALL, "xlsx", io.BytesIO())


def test_cli_export_and_digest(store, chdb_dsn: str, tmp_path: Path, monkeypatch) -> None:
    import typer
    from typer.testing import CliRunner

    from pipeline.cli.export import digest_command, export_command

    insert_two_tenants(store)
    monkeypatch.setenv("TOKENPIPE_CLICKHOUSE_DSN", f"{chdb_dsn}?database={store.database}")
    monkeypatch.delenv("TOKENPIPE_CONFIG", raising=False)
    cli = typer.Typer()
    cli.command("export")(export_command)
    cli.command("digest")(digest_command)
    out = tmp_path / "x.parquet"
    frm, to = ALL.start.isoformat(), ALL.end.isoformat()
    args = ["export", "--format", "parquet", "--from", frm, "--to", to, "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--tenant", "globex"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).column("tenant").to_pylist() == ["globex", "globex"]
    day = NOW.date().isoformat()
    result = CliRunner().invoke(cli, ["digest", "--day", day, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_cost_usd"].startswith("306.5")
