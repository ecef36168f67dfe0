"""The macro expander behaves as the ClickHouse plugin (v4) and Grafana do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboards.macros import (
    ALL,
    MacroError,
    QueryContext,
    apply_conditional_all,
    apply_macros,
    expand,
    grafana_interval,
    replace_variables,
)

FROM = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
TO = datetime(2025, 3, 2, 12, 30, 15, 250000, tzinfo=UTC)
F_S, T_S = int(FROM.timestamp()), int(TO.timestamp())


def ctx(**selections: object) -> QueryContext:
    return QueryContext(
        FROM,
        TO,
        timedelta(minutes=5),
        selections,  # type: ignore[arg-type]
        {"tenant": ["acme", "globex"], "model": ["a", "b", "c"]},
    )


def test_time_filter_and_interval() -> None:
    sql = "WHERE $__timeFilter(ts) GROUP BY $__timeInterval(ts)"
    assert apply_macros(sql, ctx()) == (
        f"WHERE ts >= toDateTime({F_S}) AND ts <= toDateTime({T_S})"
        " GROUP BY toStartOfInterval(toDateTime(ts), INTERVAL 300 second)"
    )


def test_ms_variants_and_from_to() -> None:
    out = apply_macros("$__timeFilter_ms(ts) $__fromTime $__toTime_ms $__interval_s", ctx())
    assert out == (
        f"ts >= fromUnixTimestamp64Milli({F_S * 1000}) AND ts <= fromUnixTimestamp64Milli({T_S}250)"
        f" toDateTime({F_S}) fromUnixTimestamp64Milli({T_S}250) 300"
    )


def test_date_filters() -> None:
    assert (
        apply_macros("$__dateFilter(d)", ctx())
        == "d >= toDate('2025-03-01') AND d <= toDate('2025-03-02')"
    )
    assert apply_macros("$__dt(d, t)", ctx()) == (
        f"(d >= toDate('2025-03-01') AND d <= toDate('2025-03-02'))"
        f" AND (t >= toDateTime({F_S}) AND t <= toDateTime({T_S}))"
    )


def test_macro_argument_with_nested_parentheses() -> None:
    assert apply_macros("$__timeFilter(toDateTime(ts))", ctx()).startswith(
        f"toDateTime(ts) >= toDateTime({F_S})"
    )


def test_unknown_macro_and_bad_arguments_raise() -> None:
    with pytest.raises(MacroError, match="unknown macro"):
        apply_macros("$__timeFiltr(ts)", ctx())
    with pytest.raises(MacroError, match="expected 1 argument"):
        apply_macros("$__timeFilter(a, b)", ctx())


def test_conditional_all_with_all_empty_and_values() -> None:
    sql = "WHERE $__conditionalAll(tenant IN (${tenant}), $tenant) AND x"
    assert apply_conditional_all(sql, {"tenant": ALL}) == "WHERE 1=1 AND x"
    assert apply_conditional_all(sql, {"tenant": [ALL]}) == "WHERE 1=1 AND x"
    assert apply_conditional_all(sql, {"tenant": []}) == "WHERE 1=1 AND x"
    assert apply_conditional_all(sql, {"tenant": ["acme"]}) == "WHERE tenant IN (${tenant}) AND x"


def test_conditional_all_many_in_one_query() -> None:
    sql = (
        "$__conditionalAll(tenant IN (${tenant}), $tenant) AND "
        "$__conditionalAll(model IN (${model}), ${model})"
    )
    assert (
        apply_conditional_all(sql, {"tenant": ["acme"], "model": ALL})
        == "tenant IN (${tenant}) AND 1=1"
    )


def test_multi_value_quoting_single_value_raw_and_all_expands_options() -> None:
    c = ctx(tenant=["acme", "globex"], model=ALL, limit="10")
    assert replace_variables("IN (${tenant}) IN ($model) LIMIT $limit [[limit]]", c) == (
        "IN ('acme','globex') IN ('a','b','c') LIMIT 10 10"
    )


def test_unknown_variables_and_macros_are_left_for_later_passes() -> None:
    assert replace_variables("$__timeFilter(ts) $nope", ctx()) == "$__timeFilter(ts) $nope"


def test_grafana_globals() -> None:
    out = replace_variables("$__from $__to $__interval $__interval_ms", ctx())
    assert out == f"{F_S * 1000} {T_S}250 5m 300000"


def test_expand_full_pipeline() -> None:
    sql = (
        "SELECT 1 FROM t WHERE $__timeFilter(ts)"
        " AND $__conditionalAll(tenant IN (${tenant}), $tenant)"
    )
    assert expand(sql, ctx(tenant=["acme"])).endswith("AND tenant IN ('acme')")
    assert expand(sql, ctx(tenant=ALL)).endswith("AND 1=1")


def test_grafana_interval_respects_min_interval() -> None:
    day = datetime(2025, 1, 1, tzinfo=UTC)
    assert grafana_interval(day, day + timedelta(days=1)) == timedelta(minutes=5)
    assert grafana_interval(day, day + timedelta(days=1), min_interval="1h") == timedelta(hours=1)
    assert grafana_interval(day, day + timedelta(days=365), min_interval="1h") == timedelta(
        hours=12
    )
