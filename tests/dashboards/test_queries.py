"""Every panel query and variable query RUNS on the embedded ClickHouse with demo data.

SQL is expanded as Grafana + the ClickHouse plugin would (``dashboards.macros``),
with the variables at "All" and at specific multi-value selections, and the result
columns are checked against what the panel expects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from dashboards.execute import (
    PanelQuery,
    Result,
    iter_panels,
    panel_queries,
    resolve_variables,
    run_panel_query,
)
from dashboards.panels import UNIT_RATIO, UNIT_SHARE, UNIT_USD, unit_for_column
from tests.dashboards.conftest import Demo, load_dashboards

DASHBOARDS = load_dashboards()
QUERIES = [q for d in DASHBOARDS.values() for q in panel_queries(d)]
QUERY_IDS = [
    f"{q.dashboard_uid.removeprefix('tokenpipe-')}:{q.panel_id}:{q.panel_title}" for q in QUERIES
]

SELECTIONS: dict[str, dict[str, Any]] = {
    "all": {},
    "two-tenants-one-model": {"tenant": ["acme", "globex"], "model": ["gpt-4o"]},
    "one-of-each": {
        "tenant": ["acme"],
        "team": ["platform"],
        "user": ["acme-user00"],
        "feature": ["chat"],
        "model": ["gpt-4o-mini"],
    },
}


def _is_string(ch_type: str) -> bool:
    return "String" in ch_type


def _is_time(ch_type: str) -> bool:
    return ch_type.startswith("DateTime")


def _is_number(ch_type: str) -> bool:
    return ch_type.startswith(
        ("UInt", "Int", "Float", "Decimal", "Nullable(Float", "Nullable(UInt")
    )


def _units(panel: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    fc = panel["fieldConfig"]
    by_name = {}
    for o in fc.get("overrides", []):
        if o["matcher"]["id"] == "byName":
            for prop in o["properties"]:
                if prop["id"] == "unit":
                    by_name[o["matcher"]["options"]] = prop["value"]
    return fc["defaults"].get("unit"), by_name


def check_shape(q: PanelQuery, res: Result) -> None:
    """The columns are the ones the panel type (and its config) expects."""
    cols = res.columns
    panel = q.panel
    assert cols, q.panel_title
    if q.panel_type == "timeseries":
        name, typ = cols[0]
        assert name == "time" and _is_time(typ), (
            f"{q.panel_title}: time column first, got {cols[0]}"
        )
        labels = [c for c in cols[1:] if _is_string(c[1])]
        assert len(labels) <= 1, f"{q.panel_title}: at most one series label column: {labels}"
        if labels:
            assert cols[1] == labels[0], f"{q.panel_title}: label column right after time"
            assert labels[0][0] in panel["fieldConfig"]["defaults"].get("displayName", ""), (
                q.panel_title
            )
        values = cols[1 + len(labels) :]
        assert values and all(_is_number(t) for _, t in values), f"{q.panel_title}: {values}"
        times = [r[0] for r in res.rows]
        assert times == sorted(times), f"{q.panel_title}: time series must be ordered by time"
    elif q.panel_type in ("stat", "gauge"):
        assert len(cols) == 1 and _is_number(cols[0][1]), f"{q.panel_title}: {cols}"
        assert len(res.rows) == 1, f"{q.panel_title}: one row expected"
    elif q.panel_type == "barchart":
        x_field = panel["options"]["xField"]
        assert cols[0][0] == x_field and _is_string(cols[0][1]), (
            f"{q.panel_title}: x field {cols[0]}"
        )
        assert all(_is_number(t) for _, t in cols[1:]), f"{q.panel_title}: {cols}"
    elif q.panel_type == "table":
        pass
    else:  # pragma: no cover - a new panel type needs its own rule here
        pytest.fail(f"no shape rule for panel type {q.panel_type}")

    default_unit, overrides = _units(panel)
    names = res.names
    for name in overrides:
        assert name in names, f"{q.panel_title}: override for missing column {name!r} (has {names})"
    for name in names:
        wanted = unit_for_column(name)
        if wanted not in (UNIT_USD, UNIT_SHARE, UNIT_RATIO):
            continue
        got = overrides.get(name, default_unit)
        assert got == wanted, f"{q.panel_title}: column {name} needs unit {wanted}, has {got}"


@pytest.fixture(scope="module")
def resolved(demo: Demo) -> dict[tuple[str, str], tuple[dict[str, Any], dict[str, list[str]]]]:
    out = {}
    for uid, dash in DASHBOARDS.items():
        for label, wanted in SELECTIONS.items():
            out[(uid, label)] = resolve_variables(
                demo.store, dash, demo.time_from, demo.time_to, wanted
            )
    return out


def test_variable_queries_return_options(demo: Demo, resolved: dict) -> None:
    for uid in DASHBOARDS:
        _, options = resolved[(uid, "all")]
        assert options["tenant"] == ["acme", "globex", "initech", "umbrella"]
        for name, values in options.items():
            assert values, f"{uid}: variable {name} has no options"


def test_chained_variables_narrow_to_the_selected_tenant(demo: Demo) -> None:
    dash = DASHBOARDS["tokenpipe-overview"]
    _, options = resolve_variables(
        demo.store, dash, demo.time_from, demo.time_to, {"tenant": ["umbrella"]}
    )
    assert options["team"] == ["lab"]
    assert all(u.startswith("umbrella-") for u in options["user"])


@pytest.mark.parametrize("q", QUERIES, ids=QUERY_IDS)
def test_panel_query_runs_with_all_and_returns_data(
    q: PanelQuery, demo: Demo, resolved: dict
) -> None:
    selections, options = resolved[(q.dashboard_uid, "all")]
    res = run_panel_query(demo.store, q, demo.time_from, demo.time_to, selections, options)
    assert res.rows, f"{q.panel_title}: no rows on demo data\n{res.sql}"
    check_shape(q, res)


@pytest.mark.parametrize("label", ["two-tenants-one-model", "one-of-each"])
@pytest.mark.parametrize("q", QUERIES, ids=QUERY_IDS)
def test_panel_query_runs_with_selected_values(
    q: PanelQuery, label: str, demo: Demo, resolved: dict
) -> None:
    selections, options = resolved[(q.dashboard_uid, label)]
    res = run_panel_query(demo.store, q, demo.time_from, demo.time_to, selections, options)
    if "$__conditionalAll" in q.raw_sql:
        assert "IN ('" in res.sql, "a selected value must reach the SQL quoted"
    if res.rows:
        check_shape(q, res)


def test_filters_change_the_numbers(demo: Demo) -> None:
    dash = DASHBOARDS["tokenpipe-overview"]
    [cost] = [q for q in panel_queries(dash) if q.panel_title == "Cost"]

    def total(wanted: dict[str, Any]) -> float:
        sel, opts = resolve_variables(demo.store, dash, demo.time_from, demo.time_to, wanted)
        return float(
            run_panel_query(demo.store, cost, demo.time_from, demo.time_to, sel, opts).rows[0][0]
        )

    everything = total({})
    per_tenant = [total({"tenant": [t]}) for t in ("acme", "globex", "initech", "umbrella")]
    assert everything > 0
    assert sum(per_tenant) == pytest.approx(everything, rel=1e-9)
    assert total({"tenant": ["acme", "globex"]}) == pytest.approx(
        per_tenant[0] + per_tenant[1], rel=1e-9
    )


def test_cost_matches_raw_rows(demo: Demo) -> None:
    """The rollup-based Cost stat equals usage_raw summed over the hours starting in the range.

    Rollup panels filter on the bucket start, so an hour counts when it starts
    inside the time range (documented in docs/dashboards.md).
    """
    dash = DASHBOARDS["tokenpipe-overview"]
    [cost] = [q for q in panel_queries(dash) if q.panel_title == "Cost"]
    sel, opts = resolve_variables(demo.store, dash, demo.time_from, demo.time_to)
    shown = float(
        run_panel_query(demo.store, cost, demo.time_from, demo.time_to, sel, opts).rows[0][0]
    )
    raw = float(
        demo.store.command(
            "SELECT toFloat64(sum(cost_usd)) FROM usage_raw WHERE toStartOfHour(ts) >= {f:DateTime}"
            " AND toStartOfHour(ts) <= {t:DateTime}",
            {"f": demo.time_from, "t": demo.time_to},
        )
    )
    assert shown == pytest.approx(raw, rel=1e-9)


def test_every_panel_has_a_query() -> None:
    for dash in DASHBOARDS.values():
        for panel in iter_panels(dash):
            assert panel.get("targets"), panel["title"]
