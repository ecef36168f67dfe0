"""Shared test data: two tenants' usage rows at fixed times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.conftest import RAW_INSERT_COLUMNS, raw_row

_today = datetime.now(UTC)
NOW = datetime(_today.year, _today.month, 11, 12, 0, tzinfo=UTC)
"""'now' of the tests: 10.5 days into the current month (recent enough for the raw TTL)."""


def insert_two_tenants(store: Any) -> None:
    """acme: 3 gpt-4o calls + 1 claude call; globex: 2 gpt-4o calls (distinct costs)."""
    t0 = NOW - timedelta(hours=5)
    rows = [
        raw_row("a1", t0, tenant="acme", cost_usd=Decimal("1.0")),
        raw_row("a2", t0 + timedelta(minutes=70), tenant="acme", cost_usd=Decimal("2.0")),
        raw_row("a3", t0 + timedelta(minutes=130), tenant="acme", cost_usd=Decimal("3.0")),
        raw_row(
            "a4",
            t0 + timedelta(minutes=131),
            tenant="acme",
            model="claude-sonnet",
            provider="anthropic",
            cost_usd=Decimal("0.5"),
            status="error",
        ),
        raw_row("g1", t0, tenant="globex", cost_usd=Decimal("100.0"), user="bob"),
        raw_row("g2", t0 + timedelta(minutes=1), tenant="globex", cost_usd=Decimal("200.0")),
    ]
    store.insert_rows("usage_raw", rows, RAW_INSERT_COLUMNS)
