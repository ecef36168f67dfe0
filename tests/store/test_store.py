"""DSN parsing, connection errors, client caching and existing_event_ids."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.store import Dsn, Store, connect, disconnect, parse_dsn
from tests.conftest import RAW_INSERT_COLUMNS, raw_row


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("chdb:///var/lib/tp/ch", Dsn(kind="chdb", path="/var/lib/tp/ch")),
        ("chdb:///var/lib/tp/ch/", Dsn(kind="chdb", path="/var/lib/tp/ch")),
        ("chdb:///d?database=t_1", Dsn(kind="chdb", path="/d", database="t_1")),
        (
            "http://bob:s%40cret@ch.local:9000/usage",
            Dsn(
                kind="http",
                host="ch.local",
                port=9000,
                username="bob",
                password="s@cret",
                database="usage",
            ),
        ),
        ("http://localhost", Dsn(kind="http", host="localhost", port=8123)),
        ("https://ch.example.com", Dsn(kind="https", host="ch.example.com", port=8443)),
    ],
)
def test_parse_dsn(dsn: str, expected: Dsn) -> None:
    assert parse_dsn(dsn) == expected


@pytest.mark.parametrize(
    ("dsn", "why"),
    [
        ("mysql://host/db", "unknown scheme 'mysql'"),
        ("/just/a/path", "missing scheme"),
        ("chdb://", "missing the data path"),
        ("chdb://relative/path", "host part not allowed"),
        ("chdb:///d?flavour=x", "unknown options"),
        ("chdb:///d?database=bad-name", "letters, digits and _"),
        ("http:///db", "missing the server host"),
        ("http://h:99999", "bad port"),
        ("http://h/a/b", "may only name a database"),
    ],
)
def test_bad_dsn_names_the_setting(dsn: str, why: str) -> None:
    with pytest.raises(ConfigError, match="TOKENPIPE_CLICKHOUSE_DSN") as info:
        parse_dsn(dsn)
    assert why in str(info.value)


def test_password_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        parse_dsn("http://bob:hunter2@h/a/b")
    assert "hunter2" not in str(info.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_fails_fast() -> None:
    port = _closed_port()
    t = time.monotonic()
    with pytest.raises(ConfigError, match=r"TOKENPIPE_CLICKHOUSE_DSN.*cannot reach ClickHouse"):
        connect(f"http://default:pw@127.0.0.1:{port}/db")
    assert time.monotonic() - t < 5


def test_second_path_in_one_process_is_refused(chdb_dsn: str, tmp_path: Path) -> None:
    # The session engine holds chdb_dsn's path, so another path cannot open.
    with pytest.raises(ConfigError, match="one data path per process"):
        connect(f"chdb://{tmp_path / 'other'}")


def test_path_locked_by_another_process(chdb_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "held"
    code = (
        "import sys, clickhouse_connect as c;"
        f"cl = c.get_client(interface='chdb', path={str(path)!r});"
        "print('ready', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ConfigError, match=r"locked by another process \(pid \d+\)"):
            connect(f"chdb://{path}")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


def test_clients_are_cached_and_refcounted(chdb_dsn: str) -> None:
    a = Store.open(chdb_dsn, "t_cache")
    b = Store.open(chdb_dsn, "t_cache")
    assert a.client is b.client
    a.close()
    assert b.query_rows("SELECT currentDatabase()") == [("t_cache",)]
    b.command("DROP DATABASE t_cache SYNC")
    b.close()
    c = connect(chdb_dsn, "t_cache2")  # a fresh client after the last release
    assert c is not a.client
    c.command("DROP DATABASE t_cache2 SYNC")
    disconnect(c)


def test_query_helpers(store: Store) -> None:
    ts = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert store.insert_rows("usage_raw", [raw_row("q1", ts)], RAW_INSERT_COLUMNS) == 1
    rows = store.query_dicts(
        "SELECT event_id, ts, attributes FROM usage_raw WHERE tenant = {t:String}", {"t": "acme"}
    )
    assert rows == [{"event_id": "q1", "ts": rows[0]["ts"], "attributes": {"env": "test"}}]
    assert rows[0]["ts"].replace(tzinfo=UTC) == ts


def test_existing_event_ids(store: Store) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    stored = [raw_row(f"e{i}", t0 + timedelta(seconds=i), tenant=f"t{i % 2}") for i in range(10)]
    store.insert_rows("usage_raw", stored, RAW_INSERT_COLUMNS)
    batch = [(f"t{i % 2}", t0 + timedelta(seconds=i), f"e{i}") for i in range(5, 15)]
    assert store.existing_event_ids(batch) == {"e5", "e6", "e7", "e8", "e9"}
    assert store.existing_event_ids([]) == set()
    # Other tenants and times outside the batch's span are not looked at.
    assert store.existing_event_ids([("t9", t0 + timedelta(seconds=5), "e5")]) == set()
    assert store.existing_event_ids([("t1", t0 + timedelta(hours=5), "e5")]) == set()


def test_existing_ids_with_quotes_and_backslashes(store: Store) -> None:
    from datetime import UTC, datetime

    ts = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    odd = ["o'brien", "back\\slash", "plain-1", "x', 'y", "tab\tand\nnewline"]
    store.insert_rows("usage_raw", [raw_row(e, ts) for e in odd], RAW_INSERT_COLUMNS)
    found = store.existing_event_ids_in_ranges([("acme", ts, ts)], [*odd, "not-there", "y"])
    assert found == set(odd)


def test_existing_ids_check_handles_a_large_batch(store: Store) -> None:
    """A 20k-id batch makes ~800 KB of SQL: more than ClickHouse's default query size."""
    import uuid
    from datetime import UTC, datetime

    ts = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    ids = [str(uuid.uuid4()) for _ in range(20_000)]
    store.insert_rows("usage_raw", [raw_row(e, ts) for e in ids[:5]], RAW_INSERT_COLUMNS)
    assert store.existing_event_ids_in_ranges([("acme", ts, ts)], ids) == set(ids[:5])
