"""Shared fixtures: the embedded ClickHouse store (one path per session, a database per test).

chDB hosts ONE data path per process (opening a second path while the first is
open fails), so the whole test session shares one path, kept open by
``chdb_dsn``, and each test gets its own database inside it (``CREATE DATABASE
t_<random>``, dropped afterwards). Other test packages must use these fixtures
(the lead moves them to the root conftest) rather than opening their own path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pipeline.migrate import DECLARED_SCHEMA, apply
from pipeline.store import Store, close_all

RAW_INSERT_COLUMNS = [c for c, _ in DECLARED_SCHEMA["usage_raw"] if c != "ingested_at"]


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's one embedded data path, held open for the whole session."""
    dsn = f"chdb://{tmp_path_factory.mktemp('chdb')}"
    keeper = Store.open(dsn)
    yield dsn
    keeper.close()
    close_all()


def _new_store(dsn: str) -> Store:
    return Store.open(dsn, database=f"t_{uuid.uuid4().hex[:12]}")


def _drop(store: Store) -> None:
    store.command(f"DROP DATABASE IF EXISTS `{store.database}` SYNC")
    store.close()


@pytest.fixture
def empty_store(chdb_dsn: str) -> Iterator[Store]:
    """A store on a fresh, empty database (no migrations applied)."""
    store = _new_store(chdb_dsn)
    yield store
    _drop(store)


@pytest.fixture
def store(chdb_dsn: str) -> Iterator[Store]:
    """A store on a fresh database with every migration applied (raw TTL 90 days)."""
    s = _new_store(chdb_dsn)
    apply(s)
    yield s
    _drop(s)


def raw_row(event_id: str, ts: datetime | None = None, **values: Any) -> tuple:
    """A usage_raw row in RAW_INSERT_COLUMNS order; override any column by name."""
    row: dict[str, Any] = {
        "event_id": event_id,
        "ts": ts or datetime.now(UTC) - timedelta(hours=1),
        "tenant": "acme",
        "user": "alice",
        "team": "core",
        "feature": "chat",
        "api_key_id": "key1",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_read_tokens": 10,
        "cache_write_tokens": 0,
        "reasoning_tokens": 5,
        "cost_usd": Decimal("0.001250000"),
        "input_cost_usd": Decimal("0.000250000"),
        "cache_read_cost_usd": Decimal("0.000100000"),
        "cache_write_cost_usd": Decimal("0"),
        "output_cost_usd": Decimal("0.000900000"),
        "priced": True,
        "price_source": "genai-prices",
        "price_version": "v1",
        "request_id": f"req-{event_id}",
        "reservation_id": "",
        "latency_ms": 250,
        "status": "ok",
        "attributes": {"env": "test"},
    }
    unknown = set(values) - set(row)
    assert not unknown, unknown
    row.update(values)
    return tuple(row[c] for c in RAW_INSERT_COLUMNS)
