"""Usage summary: groups and total agree with ClickHouse's own sums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pipeline.report import COLUMNS, SummaryQuery, summary
from pipeline.store import Store
from tests.conftest import RAW_INSERT_COLUMNS, raw_row


def test_total_equals_a_direct_sum_and_filters_apply(store: Store) -> None:
    ts = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    rows = [
        raw_row(f"a{i}", ts + timedelta(minutes=i), model="gpt-4o", tenant="acme") for i in range(5)
    ] + [
        raw_row(
            f"b{i}",
            ts + timedelta(minutes=i),
            model="o4-mini",
            tenant="globex",
            input_tokens=1000,
            cost_usd=Decimal("0.25"),
        )
        for i in range(3)
    ]
    store.insert_rows("usage_raw", rows, RAW_INSERT_COLUMNS)

    got = summary(store, SummaryQuery(by="model"))
    (direct,) = store.query_dicts(
        "SELECT count() AS calls, sum(input_tokens) AS input_tokens,"
        " sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd FROM usage_raw"
    )
    assert set(got.total) == set(COLUMNS)
    for k, v in direct.items():
        assert got.total[k] == v, k
    assert [r["key"] for r in got.rows] == ["o4-mini", "gpt-4o"]  # by cost, descending

    acme = summary(store, SummaryQuery(by="model", tenant="acme"))
    assert acme.total["calls"] == 5 and [r["key"] for r in acme.rows] == ["gpt-4o"]
    late = summary(store, SummaryQuery(by="tenant", start=ts + timedelta(minutes=3)))
    assert late.total["calls"] == 2  # acme at minutes 3 and 4; globex only up to minute 2
    empty = summary(store, SummaryQuery(by="model", tenant="nobody"))
    assert empty.rows == [] and empty.total["calls"] == 0 and empty.total["cost_usd"] == 0
