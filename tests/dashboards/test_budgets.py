"""The Budgets dashboard's ClickHouse view of spend agrees with the demo rows and alerts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dashboards import demo_data
from dashboards.execute import panel_queries, resolve_variables, run_panel_query
from pipeline.budgets.periods import period_start
from tests.dashboards.conftest import DEMO_DAYS, DEMO_ROWS, Demo, load_dashboards

DASHBOARD = load_dashboards()["tokenpipe-budgets"]


def _panel(demo: Demo, title: str, wanted: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    [q] = [q for q in panel_queries(DASHBOARD) if q.panel_title == title]
    sel, opts = resolve_variables(demo.store, DASHBOARD, demo.time_from, demo.time_to, wanted)
    res = run_panel_query(demo.store, q, demo.time_from, demo.time_to, sel, opts)
    return [dict(zip(res.names, row, strict=True)) for row in res.rows]


def test_spent_is_the_demo_rows_of_the_current_period(demo: Demo) -> None:
    rows = list(demo_data.generate_rows(DEMO_ROWS, days=DEMO_DAYS, end=demo.time_to))
    ix = {c: i for i, c in enumerate(demo_data.RAW_COLUMNS)}
    shown = {r["budget_id"]: r for r in _panel(demo, "USD budgets: spent vs limit")}
    shown |= {r["budget_id"]: r for r in _panel(demo, "Token budgets: spent vs limit")}
    assert set(shown) == {b.id for b in demo_data.DEMO_BUDGETS}  # the deleted one is gone
    for defn in demo_data.DEMO_BUDGETS:
        start = period_start(defn, demo.time_to)
        expected = Decimal(0)
        for r in rows:
            if r[ix["ts"]] >= start and all(r[ix[k]] == v for k, v in defn.scope.items()):
                if defn.unit == "usd":
                    expected += r[ix["cost_usd"]]
                else:
                    expected += r[ix["input_tokens"]] + r[ix["output_tokens"]]
        row = shown[defn.id]
        unit = "usd" if defn.unit == "usd" else "tokens"
        assert row[f"limit_{unit}"] == pytest.approx(float(defn.limit)), defn.id
        assert row[f"spent_{unit}"] == pytest.approx(float(expected), rel=1e-9, abs=1e-9), defn.id
        assert row[f"remaining_{unit}"] == pytest.approx(float(defn.limit - expected)), defn.id
        assert row["used_share"] == pytest.approx(float(expected / defn.limit)), defn.id


def test_fired_thresholds_are_the_ones_the_spend_reached(demo: Demo) -> None:
    """The alerts (written like the ledger fires them) agree with the spend shown."""
    by_id = {b.id: b for b in demo_data.DEMO_BUDGETS}
    for row in _panel(demo, "Budget use, current period"):
        defn = by_id[row["budget_id"]]
        reached = [t for t in defn.all_thresholds if row["used_share"] * 100 >= t]
        assert row["fired"] == " ".join(f"{t}%" for t in reached), row
        assert row["projected_share"] >= row["used_share"] * 0.99


def test_variables_select_the_budgets_that_apply(demo: Demo) -> None:
    """A tenant selection keeps that tenant's budgets and the budgets without a tenant."""
    ids = {
        r["budget_id"] for r in _panel(demo, "Budget use, current period", {"tenant": ["globex"]})
    }
    assert ids == {"globex-daily", "code-review-7d", "gpt-4o-monthly"}
    ids = {
        r["budget_id"]
        for r in _panel(
            demo, "Budget use, current period", {"tenant": ["acme"], "team": ["platform"]}
        )
    }
    assert ids == {
        "acme-monthly",
        "acme-platform-weekly",
        "acme-user00-tokens",
        "code-review-7d",
        "gpt-4o-monthly",
    }
