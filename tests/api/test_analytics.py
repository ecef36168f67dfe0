"""analytics(): numbers, tenant scoping, series from rollups, projection, optional tables."""

from __future__ import annotations

import calendar
from datetime import timedelta
from decimal import Decimal

import pytest

from pipeline.api import AnalyticsQuery, analytics
from tests.api.helpers import NOW, insert_two_tenants

DAY = NOW.date().isoformat()


def q(**kw: object) -> AnalyticsQuery:
    params = {"range": "24h", "to": None, **kw}
    raw = {k: str(v) for k, v in params.items() if v is not None and k != "to"}
    return AnalyticsQuery.from_params(raw, now=NOW)


def test_summary_models_series_for_one_tenant(store) -> None:
    insert_two_tenants(store)
    out = analytics(store, q(tenant="acme"), now=NOW)
    s = out["summary"]
    assert s["calls"] == 4 and s["error_calls"] == 1
    assert Decimal(s["cost_usd"]) == Decimal("6.5")
    assert s["tokens"]["input"] == 400 and s["tokens"]["cache_read"] == 40
    assert s["tokens"]["uncached_input"] == 360 and s["tokens"]["total"] == 480
    assert [m["model"] for m in out["models"]] == ["gpt-4o", "claude-sonnet"]
    assert Decimal(out["models"][0]["cost_usd"]) == Decimal("6")
    # hourly buckets from the 1h rollup: 07:00 (1), 08:00 (1), 09:00 (2)
    assert [(b["bucket"], b["calls"]) for b in out["series"]] == [
        (f"{DAY}T07:00:00Z", 1),
        (f"{DAY}T08:00:00Z", 1),
        (f"{DAY}T09:00:00Z", 2),
    ]
    assert sum(Decimal(b["cost_usd"]) for b in out["series"]) == Decimal("6.5")
    assert out["query"]["aggregation"] == "hour"


def test_no_tenant_reads_all_and_model_filter(store) -> None:
    insert_two_tenants(store)
    assert Decimal(analytics(store, q(), now=NOW)["summary"]["cost_usd"]) == Decimal("306.5")
    only = analytics(store, q(model="claude-sonnet"), now=NOW)
    assert only["summary"]["calls"] == 1 and [m["model"] for m in only["models"]] == [
        "claude-sonnet"
    ]


def test_day_aggregation_and_range_edges(store) -> None:
    insert_two_tenants(store)
    out = analytics(store, q(range="7d", tenant="globex"), now=NOW)
    assert out["query"]["aggregation"] == "day"
    assert [(b["bucket"], b["calls"]) for b in out["series"]] == [(f"{DAY}T00:00:00Z", 2)]
    # a range ending before the events sees nothing
    early = AnalyticsQuery.from_params(
        {"from": "2025-06-10T00:00:00Z", "to": f"{DAY}T06:00:00Z"}, now=NOW
    )
    assert analytics(store, early, now=NOW)["summary"]["calls"] == 0


def test_projection_from_month_to_date_run_rate(store) -> None:
    insert_two_tenants(store)
    p = analytics(store, q(tenant="acme"), now=NOW)["projection"]
    # 6.5 USD in 10.5 days of the month -> 6.5 / 10.5 * days_in_month
    days = calendar.monthrange(NOW.year, NOW.month)[1]
    assert p["month"] == NOW.strftime("%Y-%m") and p["days_in_month"] == days
    assert Decimal(p["month_to_date_cost_usd"]) == Decimal("6.5")
    expected = Decimal("6.5") / Decimal("10.5") * days
    assert abs(Decimal(p["projected_month_cost_usd"]) - expected) < Decimal("0.000001")


def _drop_optional(store) -> None:
    for name in ("alerts", "anomalies", "budgets"):
        store.command(f"DROP TABLE IF EXISTS {name}")


def test_optional_sections_empty_without_tables(store) -> None:
    _drop_optional(store)
    out = analytics(store, q(tenant="acme"), now=NOW)
    assert out["alerts"] == [] and out["anomalies"] == [] and out["budgets"] == []
    assert out["sources"] == {"alerts": None, "anomalies": None, "budgets": None}


def test_optional_tables_are_read_and_tenant_scoped(store) -> None:
    # minimal stand-ins with the shapes of migration 0003 (tenant column / scope map)
    _drop_optional(store)
    store.command(
        "CREATE TABLE anomalies (anomaly_id String, scope Map(String, String),"
        " window_start DateTime64(3, 'UTC'), ratio Float64)"
        " ENGINE = ReplacingMergeTree ORDER BY anomaly_id"
    )
    store.command(
        "CREATE TABLE alerts (alert_id String, tenant String, ts DateTime64(3, 'UTC'))"
        " ENGINE = ReplacingMergeTree ORDER BY alert_id"
    )
    store.command(
        "CREATE TABLE budgets (id String, scope Map(String, String), deleted UInt8,"
        " updated_at DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree ORDER BY id"
    )
    w = NOW - timedelta(hours=1)
    store.insert_rows(
        "anomalies",
        [("x1", {"tenant": "acme"}, w, 4.0), ("x2", {"tenant": "globex"}, w, 9.0)],
        ["anomaly_id", "scope", "window_start", "ratio"],
    )
    store.insert_rows(
        "alerts",
        [("al1", "acme", w), ("al2", "globex", w), ("old", "acme", w - timedelta(days=3))],
        ["alert_id", "tenant", "ts"],
    )
    store.insert_rows(
        "budgets",
        [
            ("b1", {"tenant": "acme"}, 0, w),
            ("b2", {"tenant": "globex"}, 0, w),
            ("b3", {"tenant": "acme"}, 1, w),  # deleted
            ("b4", {"feature": "chat"}, 0, w),  # no tenant in scope: admin only
        ],
        ["id", "scope", "deleted", "updated_at"],
    )
    out = analytics(store, q(tenant="acme"), now=NOW)
    assert [a["anomaly_id"] for a in out["anomalies"]] == ["x1"]
    assert [a["alert_id"] for a in out["alerts"]] == ["al1"]  # "old" is outside the 24h range
    assert [b["id"] for b in out["budgets"]] == ["b1"]
    assert out["sources"] == {"alerts": "alerts", "anomalies": "anomalies", "budgets": "budgets"}
    everything = analytics(store, q(), now=NOW)
    assert len(everything["anomalies"]) == 2 and len(everything["alerts"]) == 2
    assert sorted(b["id"] for b in everything["budgets"]) == ["b1", "b2", "b4"]


def test_optional_sections_with_real_migrations(store) -> None:
    """Whatever the migrations create now, the section queries run (and scope by tenant)."""
    out = analytics(store, q(tenant="acme"), now=NOW)
    assert set(out["sources"]) == {"alerts", "anomalies", "budgets"}


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"range": "7x"}, "range"),
        ({"range": "7d", "from": "-1d"}, "either"),
        ({"aggregation": "minute"}, "aggregation"),
        ({"from": f"{DAY}T00:00:00Z", "to": "2025-06-10T00:00:00Z"}, "before"),
        ({"range": "200d", "aggregation": "hour"}, "at most"),
        ({"from": f"{DAY}T00:00:00"}, "timezone"),
    ],
)
def test_bad_params(params: dict[str, str], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        AnalyticsQuery.from_params(params, now=NOW)
