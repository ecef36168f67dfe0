"""Overview: calls, tokens, cost and what drives them, from the hourly rollup."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as models

from dashboards import panels as p

UID = "tokenpipe-overview"

_WHERE = f"$__timeFilter(bucket) AND {p.FILTERS}"


def build() -> models.Dashboard:
    grid = p.Grid()
    d = p.dashboard(
        UID,
        "tokenpipe / Overview",
        "LLM calls, tokens and cost across tenants, from usage_rollup_1h.",
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Calls",
            f"SELECT sum(calls) AS calls FROM usage_rollup_1h WHERE {_WHERE}",
            unit=p.UNIT_COUNT,
            description="LLM calls in the time range.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Tokens",
            "SELECT sum(input_tokens) + sum(output_tokens) AS tokens"
            f" FROM usage_rollup_1h WHERE {_WHERE}",
            unit=p.UNIT_COUNT,
            description="Input plus output tokens (cache and reasoning tokens are parts of these).",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Cost",
            f"SELECT toFloat64(sum(cost_usd)) AS cost_usd FROM usage_rollup_1h WHERE {_WHERE}",
            unit=p.UNIT_USD,
            decimals=2,
            description="Priced cost of all calls in the time range.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Avg cost per call",
            "SELECT toFloat64(sum(cost_usd)) / greatest(sum(calls), 1) AS avg_cost_usd"
            f" FROM usage_rollup_1h WHERE {_WHERE}",
            unit=p.UNIT_USD,
            decimals=5,
            steps=((None, "green"), (0.01, "orange"), (0.1, "red")),
            description="Cost divided by calls (unpriced calls count as calls with no cost).",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Unpriced calls",
            "SELECT sum(unpriced_calls) / greatest(sum(calls), 1) AS unpriced_share"
            f" FROM usage_rollup_1h WHERE {_WHERE}",
            unit=p.UNIT_SHARE,
            decimals=2,
            steps=((None, "green"), (0.001, "orange"), (0.01, "red")),
            description="Share of calls whose model has no price: their cost is unknown, not $0.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Error rate",
            "SELECT sum(error_calls) / greatest(sum(calls), 1) AS error_share"
            f" FROM usage_rollup_1h WHERE {_WHERE}",
            unit=p.UNIT_SHARE,
            decimals=2,
            steps=((None, "green"), (0.01, "orange"), (0.05, "red")),
            description="Share of calls with status other than ok.",
        )
    )
    grid.newline()
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Cost by model",
            "SELECT $__timeInterval(bucket) AS time, model, toFloat64(sum(cost_usd)) AS cost_usd"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY time, model ORDER BY time, model",
            unit=p.UNIT_USD,
            series_label="model",
            stacked=True,
            bars=True,
            description="Cost per time bucket, stacked by model.",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Cost by provider",
            "SELECT $__timeInterval(bucket) AS time, provider, toFloat64(sum(cost_usd)) AS cost_usd"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY time, provider ORDER BY time, provider",
            unit=p.UNIT_USD,
            series_label="provider",
            stacked=True,
            bars=True,
            description="Cost per time bucket, stacked by provider.",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Tokens",
            "SELECT $__timeInterval(bucket) AS time,"
            " sum(input_tokens) - sum(cache_read_tokens) AS uncached_input,"
            " sum(cache_read_tokens) AS cache_read, sum(output_tokens) AS output"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY time ORDER BY time",
            unit=p.UNIT_COUNT,
            stacked=True,
            description="Tokens per time bucket: input not read from cache, cache reads, output.",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Calls",
            "SELECT $__timeInterval(bucket) AS time, sum(calls) - sum(error_calls) AS ok,"
            " sum(error_calls) AS errors"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY time ORDER BY time",
            unit=p.UNIT_COUNT,
            stacked=True,
            description="Calls per time bucket, ok and errors.",
        )
    )
    return d.build()
