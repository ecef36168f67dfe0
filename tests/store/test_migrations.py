"""Migrations produce the declared schema, are idempotent, and refuse unknown states."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

import pipeline.migrate as migrate
from pipeline.errors import ConfigError
from pipeline.migrate import DECLARED_SCHEMA, DECLARED_TABLES, DECLARED_VIEWS, apply, plan
from pipeline.store import Store
from tests.conftest import RAW_INSERT_COLUMNS, raw_row


def _tables(store: Store) -> dict[str, tuple[str, str, str]]:
    rows = store.query_rows(
        "SELECT name, engine, sorting_key, create_table_query FROM system.tables"
        " WHERE database = currentDatabase()"
    )
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_migrations_are_numbered_and_load() -> None:
    ms = migrate.load_migrations()
    assert [m.version for m in ms] == list(range(1, len(ms) + 1))
    assert ms[0].name == "usage_raw"
    assert ms[0].placeholders == {"raw_ttl_days"}
    for m in ms:
        assert m.statements(migrate.DEFAULT_PARAMETERS)  # renders, no stray placeholder


def test_applied_schema_matches_declared(empty_store: Store) -> None:
    done = apply(empty_store)
    assert [(a.version, a.name) for a in done] == [
        (1, "usage_raw"),
        (2, "rollups"),
        (3, "budgets_alerts"),
    ]
    tables = _tables(empty_store)
    expected_names = (
        set(DECLARED_TABLES)
        | set(DECLARED_VIEWS)
        | {migrate.MIGRATIONS_TABLE, migrate.PARAMETERS_TABLE}
    )
    assert set(tables) == expected_names
    for name, spec in DECLARED_TABLES.items():
        cols = empty_store.query_rows(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase()"
            " AND table = {t:String} ORDER BY position",
            {"t": name},
        )
        assert cols == DECLARED_SCHEMA[name], name
        engine, sorting_key, _ = tables[name]
        assert (engine, sorting_key) == (spec.engine, spec.sorting_key), name
    for view, target in DECLARED_VIEWS.items():
        engine, _, ddl = tables[view]
        assert engine == "MaterializedView"
        assert f"TO {empty_store.database}.{target} " in ddl
    assert "toIntervalDay(90)" in tables["usage_raw"][2]


def test_second_run_applies_nothing(store: Store) -> None:
    assert apply(store) == []
    assert plan(store).empty
    assert store.query_rows("SELECT version, name FROM schema_migrations ORDER BY version") == [
        (1, "usage_raw"),
        (2, "rollups"),
        (3, "budgets_alerts"),
    ]


def test_dry_run_changes_nothing(empty_store: Store) -> None:
    done = apply(empty_store, dry_run=True)
    assert [a.version for a in done] == [1, 2, 3]
    assert any("CREATE TABLE IF NOT EXISTS usage_raw" in s for s in done[0].statements)
    assert any("INTERVAL 90 DAY" in s for s in done[0].statements)
    assert _tables(empty_store) == {}


def test_changed_checksum_is_refused(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real = migrate.load_migrations()
    edited = dataclasses.replace(real[0], sql=real[0].sql + "\n-- edited\n", checksum="0" * 64)
    monkeypatch.setattr(migrate, "load_migrations", lambda: [edited, *real[1:]])
    with pytest.raises(ConfigError, match=r"unknown state.*0001_usage_raw\.sql changed"):
        apply(store)


def test_vanished_migration_is_refused(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real = migrate.load_migrations()
    monkeypatch.setattr(migrate, "load_migrations", lambda: real[:1])
    with pytest.raises(ConfigError, match=r"unknown state.*0002 \(rollups\) is recorded but no"):
        apply(store)


def test_unexpected_table_shape_is_refused(empty_store: Store) -> None:
    empty_store.command(
        "CREATE TABLE schema_migrations (version UInt64, name String)"
        " ENGINE = MergeTree ORDER BY version"
    )
    with pytest.raises(ConfigError, match=r"unknown state.*schema_migrations has columns"):
        apply(empty_store)


def test_ttl_change_is_reapplied(store: Store) -> None:
    done = apply(store, parameters={"raw_ttl_days": "30"})
    assert [(a.version, a.name) for a in done] == [(None, "raw_ttl_days: 90 → 30")]
    assert "toIntervalDay(30)" in _tables(store)["usage_raw"][2]
    assert apply(store, parameters={"raw_ttl_days": "30"}) == []
    dry = apply(store, dry_run=True, parameters={"raw_ttl_days": "120"})
    assert dry[0].statements == [
        "ALTER TABLE usage_raw MODIFY TTL toDateTime(ts) + INTERVAL 120 DAY"
    ]
    assert "toIntervalDay(30)" in _tables(store)["usage_raw"][2]


def test_duplicate_event_id_collapses_in_final(store: Store) -> None:
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    store.insert_rows("usage_raw", [raw_row("e1", ts), raw_row("e2", ts)], RAW_INSERT_COLUMNS)
    store.insert_rows("usage_raw", [raw_row("e1", ts)], RAW_INSERT_COLUMNS)  # a replay
    assert store.command("SELECT count() FROM usage_raw") == 3
    assert store.query_rows("SELECT event_id FROM usage_raw FINAL ORDER BY event_id") == [
        ("e1",),
        ("e2",),
    ]


def test_rollups_sum_inserted_rows(store: Store) -> None:
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    rows = [
        raw_row("a1", base + timedelta(seconds=5)),
        raw_row("a2", base + timedelta(seconds=50), input_tokens=1000),
        raw_row("a3", base + timedelta(minutes=1, seconds=1), priced=False, cost_usd=Decimal(0)),
        raw_row("a4", base + timedelta(minutes=1, seconds=2), user="bob", status="error"),
    ]
    store.insert_rows("usage_raw", rows[:2], RAW_INSERT_COLUMNS)
    store.insert_rows("usage_raw", rows[2:], RAW_INSERT_COLUMNS)  # second block, same buckets
    by_minute = store.query_rows(
        "SELECT bucket, sum(calls), sum(priced_calls), sum(unpriced_calls), sum(error_calls),"
        " sum(input_tokens), sum(cost_usd) FROM usage_rollup_1m GROUP BY bucket ORDER BY bucket"
    )
    assert [r[1:] for r in by_minute] == [
        (2, 2, 0, 0, 1100, Decimal("0.0025")),
        (2, 1, 1, 1, 200, Decimal("0.00125")),
    ]
    assert by_minute[0][0].replace(tzinfo=None) == base.replace(tzinfo=None)
    for table in ("usage_rollup_1h", "usage_rollup_1d"):
        total = store.query_rows(
            f"SELECT sum(calls), sum(input_tokens), sum(cost_usd), uniqExact(user) FROM {table}"
        )
        assert total == [(4, 1300, Decimal("0.00375"), 2)], table
    per_user = store.query_rows(
        "SELECT user, sum(calls) FROM usage_rollup_1h GROUP BY user ORDER BY user"
    )
    assert per_user == [("alice", 3), ("bob", 1)]


def test_cli_migrate_dry_run_then_apply(chdb_dsn: str) -> None:
    import typer
    from typer.testing import CliRunner

    from pipeline.cli.migrate import migrate_command

    app = typer.Typer()
    app.command()(migrate_command)
    args = ["--dsn", chdb_dsn, "--database", "t_cli"]
    dry = CliRunner().invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would apply 0001 usage_raw" in dry.output
    assert "CREATE TABLE IF NOT EXISTS usage_raw" in dry.output
    real = CliRunner().invoke(app, args)
    assert real.exit_code == 0, real.output
    assert "applied 0002 rollups" in real.output
    again = CliRunner().invoke(app, args)
    assert "up to date" in again.output
    with Store.open(chdb_dsn, "t_cli") as s:
        s.command("DROP DATABASE t_cli SYNC")
