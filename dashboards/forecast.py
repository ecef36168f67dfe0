"""Forecast: month-to-date spend and the month-end projection per tenant.

"Now" is the end of the dashboard's time range (``$__toTime``), so the panels
answer "as of" any moment and are reproducible; the month is the calendar month
(UTC) containing it. Two projections (docs/dashboards.md):

* run rate: ``mtd + daily_rate_7d * days_left``, where ``daily_rate_7d`` is the
  cost of the trailing 7 days / 7 — reacts to recent changes in usage;
* month pace: ``mtd / elapsed * month_length`` — the month so far, extrapolated.

Reads the hourly rollup (the month and the trailing week only).
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as models

from dashboards import panels as p

UID = "tokenpipe-forecast"

#: Time anchors shared by every forecast query (a WITH clause prefix).
_ANCHORS = """
WITH
    $__toTime AS as_of,
    toDateTime(toStartOfMonth(as_of, 'UTC'), 'UTC') AS month_start,
    month_start + INTERVAL 1 MONTH AS month_end,
    greatest(dateDiff('second', month_start, as_of), 1) AS elapsed_s,
    dateDiff('second', month_start, month_end) AS month_s,
    as_of - INTERVAL 7 DAY AS week_start
""".strip()

_WHERE = f"bucket >= least(month_start, week_start) AND bucket <= as_of AND {p.FILTERS}"

_PER_TENANT = f"""
{_ANCHORS}
SELECT
    tenant,
    toFloat64(sumIf(cost_usd, bucket >= month_start)) AS mtd_usd,
    toFloat64(sumIf(cost_usd, bucket >= week_start)) / 7 AS daily_run_rate_usd,
    mtd_usd + daily_run_rate_usd * (month_s - elapsed_s) / 86400 AS projected_run_rate_usd,
    mtd_usd * month_s / elapsed_s AS projected_pace_usd,
    elapsed_s / month_s AS month_elapsed_share
FROM usage_rollup_1h
WHERE {_WHERE}
GROUP BY tenant
""".strip()


def build() -> models.Dashboard:
    grid = p.Grid()
    d = p.dashboard(
        UID,
        "tokenpipe / Forecast",
        "Month-to-date spend and month-end projection per tenant, as of the end of the time range.",
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Month to date",
            f"SELECT sum(mtd_usd) AS mtd_usd FROM ({_PER_TENANT})",
            unit=p.UNIT_USD,
            decimals=2,
            w=6,
            h=5,
            description="Spend since the start of the month containing the end of the time range.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Projected month end (7-day run rate)",
            f"SELECT sum(projected_run_rate_usd) AS projected_run_rate_usd FROM ({_PER_TENANT})",
            unit=p.UNIT_USD,
            decimals=2,
            w=6,
            h=5,
            description="Month to date plus the trailing 7-day daily cost times the days left.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Projected month end (month pace)",
            f"SELECT sum(projected_pace_usd) AS projected_pace_usd FROM ({_PER_TENANT})",
            unit=p.UNIT_USD,
            decimals=2,
            w=6,
            h=5,
            description="Month to date divided by the elapsed share of the month.",
        )
    )
    d = d.with_panel(
        p.gauge_panel(
            grid,
            "Month elapsed",
            f"{_ANCHORS} SELECT elapsed_s / month_s AS month_elapsed_share",
            unit=p.UNIT_SHARE,
            w=6,
            h=5,
            steps=((None, "blue"), (0.75, "orange"), (0.95, "red")),
            description="How much of the month has passed at the end of the time range.",
        )
    )
    cols = [
        "tenant",
        "mtd_usd",
        "daily_run_rate_usd",
        "projected_run_rate_usd",
        "projected_pace_usd",
        "month_elapsed_share",
    ]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Per tenant",
            f"SELECT * FROM ({_PER_TENANT}) ORDER BY projected_run_rate_usd DESC",
            columns=cols,
            sort_by="projected_run_rate_usd",
            w=12,
            h=10,
            description="Month to date, trailing 7-day daily cost and both month-end projections.",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Daily spend this month",
            f"{_ANCHORS} SELECT bucket AS time, tenant, toFloat64(sum(cost_usd)) AS cost_usd"
            f" FROM usage_rollup_1d WHERE bucket >= month_start AND bucket <= as_of AND {p.FILTERS}"
            " GROUP BY time, tenant ORDER BY time, tenant",
            unit=p.UNIT_USD,
            series_label="tenant",
            stacked=True,
            bars=True,
            w=12,
            h=10,
            min_interval="1d",
            description="Cost per day of the current month, stacked by tenant.",
        )
    )
    return d.build()
