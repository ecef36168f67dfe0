"""Dashboard fixtures: one demo database per test module, on the session's chDB path.

Uses the root conftest's ``chdb_dsn`` (one embedded data path per process) and
loads ``dashboards.demo_data`` once per module (~5 s for 50k rows).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboards import demo_data
from pipeline.migrate import apply
from pipeline.store import Store

JSON_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "json"
DEMO_ROWS = 50_000
DEMO_DAYS = 30


def load_dashboards() -> dict[str, dict[str, Any]]:
    """The checked-in dashboards, by uid (what Grafana provisions)."""
    out = {}
    for path in sorted(JSON_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        out[data["uid"]] = data
    return out


@dataclass(frozen=True)
class Demo:
    store: Store
    time_from: datetime
    time_to: datetime


@pytest.fixture(scope="module")
def demo(chdb_dsn: str) -> Iterator[Demo]:
    """A migrated database with the deterministic demo rows, and their time range."""
    store = Store.open(chdb_dsn, database=f"t_dash_{uuid.uuid4().hex[:10]}")
    apply(store)
    end = demo_data.default_end()
    demo_data.load(store, DEMO_ROWS, days=DEMO_DAYS, end=end)
    yield Demo(store, end - timedelta(days=DEMO_DAYS), end)
    store.command(f"DROP DATABASE IF EXISTS `{store.database}` SYNC")
    store.close()
