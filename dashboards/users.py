"""Users and features: who spends, on what, through which API key."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as models

from dashboards import panels as p

UID = "tokenpipe-users"

_WHERE = f"$__timeFilter(bucket) AND {p.FILTERS}"


def build() -> models.Dashboard:
    grid = p.Grid()
    d = p.dashboard(
        UID,
        "tokenpipe / Users and features",
        "Top spenders, cost per feature and team, and per API key, from usage_rollup_1h.",
    )
    spender_cols = ["user", "team", "tenant", "calls", "tokens", "cost_usd", "cost_share"]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Top spenders",
            "SELECT user, team, tenant, sum(calls) AS calls,"
            " sum(input_tokens) + sum(output_tokens) AS tokens,"
            " toFloat64(sum(cost_usd)) AS cost_usd,"
            " cost_usd / greatest(sum(cost_usd) OVER (), 1e-9) AS cost_share"
            f" FROM usage_rollup_1h WHERE {_WHERE}"
            " GROUP BY tenant, user, team ORDER BY cost_usd DESC LIMIT 25",
            columns=spender_cols,
            sort_by="cost_usd",
            w=12,
            h=10,
            description="The 25 users with the highest cost; share is of the total shown by the"
            " filters.",
        )
    )
    d = d.with_panel(
        p.barchart_panel(
            grid,
            "Cost per feature",
            "SELECT feature, toFloat64(sum(cost_usd)) AS cost_usd"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY feature ORDER BY cost_usd DESC",
            unit=p.UNIT_USD,
            x_field="feature",
            w=12,
            h=10,
            description="Total cost per product feature.",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Cost by team",
            "SELECT $__timeInterval(bucket) AS time, team, toFloat64(sum(cost_usd)) AS cost_usd"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY time, team ORDER BY time, team",
            unit=p.UNIT_USD,
            series_label="team",
            stacked=True,
            bars=True,
            description="Cost per time bucket, stacked by team.",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Cost by feature",
            "SELECT $__timeInterval(bucket) AS time, feature, toFloat64(sum(cost_usd)) AS cost_usd"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY time, feature ORDER BY time, feature",
            unit=p.UNIT_USD,
            series_label="feature",
            stacked=True,
            bars=True,
            description="Cost per time bucket, stacked by feature.",
        )
    )
    feature_cols = [
        "feature",
        "calls",
        "users",
        "avg_input_tokens",
        "avg_output_tokens",
        "cost_usd",
        "avg_cost_usd",
    ]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Features",
            "SELECT feature, sum(calls) AS calls, uniqExact(user) AS users,"
            " sum(input_tokens) / greatest(calls, 1) AS avg_input_tokens,"
            " sum(output_tokens) / greatest(calls, 1) AS avg_output_tokens,"
            " toFloat64(sum(cost_usd)) AS cost_usd, cost_usd / greatest(calls, 1) AS avg_cost_usd"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY feature ORDER BY cost_usd DESC",
            columns=feature_cols,
            sort_by="cost_usd",
            w=12,
            description="Per feature: calls, distinct users, average tokens and cost per call.",
        )
    )
    key_cols = ["api_key_id", "tenant", "users", "calls", "error_share", "cost_usd", "last_seen"]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Cost per API key",
            "SELECT api_key_id, tenant, uniqExact(user) AS users, sum(calls) AS calls,"
            " sum(error_calls) / greatest(calls, 1) AS error_share,"
            " toFloat64(sum(cost_usd)) AS cost_usd, max(bucket) AS last_seen"
            f" FROM usage_rollup_1h WHERE {_WHERE}"
            " GROUP BY tenant, api_key_id ORDER BY cost_usd DESC LIMIT 100",
            columns=key_cols,
            sort_by="cost_usd",
            w=12,
            description="Per API key: users, calls, error share, cost and the last hour it"
            " was used.",
        )
    )
    return d.build()
