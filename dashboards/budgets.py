"""Budgets: how much of each budget's limit the current period has used, and its alerts.

"Now" is the end of the dashboard's time range (``$__toTime``), as in the Forecast
dashboard; each budget's current period is the one containing it (UTC calendar
hour/day/ISO week/month, or the last N whole days for ``rolling``), whatever the
time range. The time range only selects the alerts shown.

This is the ClickHouse view of spend: the definitions come from the ``budgets``
history table (each id's latest version written at or before "now", deletions
dropped) and the spend is the hourly rollup summed over the period for the rows
that match every scope dimension. The worker's ledger (``GET
/v1/budgets/{id}/status``) is authoritative for enforcement and also holds the
open reservations, which are not in ClickHouse: "remaining" here is limit − spent.

The dashboard variables select the budgets and alerts that apply to the selection:
a budget (or alert) is shown when each of its scope dimensions that has a variable
is among the selected values; a dimension it does not scope does not filter it
(a tenant-wide budget is shown for any team of that tenant). The spend is always
the budget's own, never narrowed by the variables.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models import dashboard as models

from dashboards import panels as p

UID = "tokenpipe-budgets"

#: Colours of budget use (0..1 of the limit) at the default thresholds 50/75/90/100 %.
BUDGET_STEPS: tuple[tuple[float | None, str], ...] = (
    (None, "green"),
    (0.5, "yellow"),
    (0.75, "orange"),
    (0.9, "red"),
    (1.0, "#C4162A"),
)


def scope_filters(scope: str, tenant: str | None = None) -> str:
    """Filter rows carrying a scope map on every dashboard variable ("applies to" rule).

    Per variable: "All" adds nothing (``$__conditionalAll``); otherwise the row is
    kept when ``scope`` does not name the dimension or names a selected value.
    ``tenant``: a column holding the tenant instead of the map ('' = every tenant).
    """
    parts = []
    for name in p.VARIABLES:
        if name == "tenant" and tenant is not None:
            cond = f"({tenant} = '' OR {tenant} IN (${{tenant}}))"
        else:
            cond = f"(NOT mapContains({scope}, '{name}') OR {scope}['{name}'] IN (${{{name}}}))"
        parts.append(f"$__conditionalAll({cond}, ${name})")
    return " AND ".join(parts)


#: One row per budget that applies to the selection, as of ``$__toTime``: the
#: definition, its current period, spend (USD, or input + output tokens), pace
#: projection to the period end and the thresholds already alerted in the period.
#: Column names carry no unit suffix; each panel names its outputs.
STATUS = f"""
WITH
    toDateTime($__toTime, 'UTC') AS as_of,
    defs AS (
        SELECT
            id AS budget_id,
            argMax(name, version) AS budget_name,
            argMax(scope, version) AS budget_scope,
            argMax(period, version) AS budget_period,
            argMax(unit, version) AS budget_unit,
            toFloat64(argMax(limit, version)) AS budget_limit,
            argMax(mode, version) AS budget_mode,
            argMax(definition, version) AS budget_definition,
            argMax(deleted, version) AS is_deleted
        FROM budgets
        WHERE updated_at <= as_of
        GROUP BY id
        HAVING is_deleted = 0
    ),
    periods AS (
        SELECT
            *,
            JSONExtractUInt(budget_definition, 'rolling_days') AS rolling_days,
            multiIf(
                budget_period = 'hour', toStartOfHour(as_of),
                budget_period = 'day', toStartOfDay(as_of),
                budget_period = 'week', toDateTime(toMonday(as_of), 'UTC'),
                budget_period = 'month', toDateTime(toStartOfMonth(as_of), 'UTC'),
                toStartOfDay(as_of) - toIntervalDay(greatest(rolling_days, 1) - 1)
            ) AS period_start,
            multiIf(
                budget_period = 'hour', period_start + INTERVAL 1 HOUR,
                budget_period = 'week', period_start + INTERVAL 7 DAY,
                budget_period = 'month', period_start + INTERVAL 1 MONTH,
                toStartOfDay(as_of) + INTERVAL 1 DAY
            ) AS period_end,
            arrayStringConcat(
                arrayMap((k, v) -> concat(k, '=', v),
                    mapKeys(budget_scope), mapValues(budget_scope)),
                ', '
            ) AS scope_text,
            arraySort(arrayDistinct(arrayConcat(
                JSONExtract(budget_definition, 'thresholds', 'Array(UInt16)'),
                if(JSONHas(budget_definition, 'emergency_threshold')
                    AND NOT JSONType(budget_definition, 'emergency_threshold') = 'Null',
                   [toUInt16(JSONExtractUInt(budget_definition, 'emergency_threshold'))],
                   CAST([], 'Array(UInt16)'))
            ))) AS threshold_list
        FROM defs
        WHERE {scope_filters("budget_scope")}
    ),
    spend AS (
        SELECT
            b.budget_id AS budget_id,
            sum(if(b.budget_unit = 'usd', toFloat64(u.cost_usd),
                   toFloat64(u.input_tokens + u.output_tokens))) AS spent_amount
        FROM periods AS b
        CROSS JOIN usage_rollup_1h AS u
        WHERE u.bucket >= (SELECT min(period_start) FROM periods)
            AND u.bucket >= b.period_start AND u.bucket <= as_of
            AND arrayAll(k -> b.budget_scope[k] = multiIf(
                    k = 'tenant', u.tenant, k = 'team', u.team, k = 'user', u.user,
                    k = 'feature', u.feature, k = 'api_key_id', u.api_key_id,
                    k = 'model', u.model, ''),
                mapKeys(b.budget_scope))
        GROUP BY b.budget_id
    ),
    fired AS (
        SELECT
            a.budget_id AS budget_id,
            arraySort(groupUniqArray(toUInt16(JSONExtractUInt(a.data, 'threshold')))) AS fired_list
        FROM alerts AS a FINAL
        INNER JOIN periods AS b ON a.budget_id = b.budget_id
        WHERE a.kind = 'budget_threshold'
            AND parseDateTimeBestEffort(JSONExtractString(a.data, 'period_start')) = b.period_start
        GROUP BY a.budget_id
    )
SELECT
    p.budget_id AS budget_id,
    budget_name,
    scope_text,
    budget_period,
    budget_unit,
    budget_mode,
    budget_limit,
    s.spent_amount AS spent,
    budget_limit - spent AS remaining,
    spent / budget_limit AS used,
    greatest(dateDiff('second', period_start, as_of), 1)
        / dateDiff('second', period_start, period_end) AS elapsed,
    spent / elapsed AS projected,
    projected / budget_limit AS projected_used,
    period_start,
    period_end,
    arrayStringConcat(arrayMap(t -> concat(toString(t), '%'), threshold_list), ' ') AS thresholds,
    arrayStringConcat(arrayMap(t -> concat(toString(t), '%'), f.fired_list), ' ') AS fired
FROM periods AS p
LEFT JOIN spend AS s ON s.budget_id = p.budget_id
LEFT JOIN fired AS f ON f.budget_id = p.budget_id
""".strip()

#: Budget threshold alerts in the time range that apply to the selection.
_ALERTS_WHERE = "kind = 'budget_threshold' AND $__timeFilter(ts) AND " + scope_filters(
    "scope", tenant="tenant"
)


def _use_override(panel: table.Panel, column: str, *, gauge_cell: bool) -> table.Panel:
    """A 0..1 column as percent with the budget colours (optionally as an in-cell gauge)."""
    props = [
        models.DynamicConfigValue(id_val="unit", value=p.UNIT_SHARE),
        models.DynamicConfigValue(id_val="decimals", value=1),
        models.DynamicConfigValue(
            id_val="thresholds",
            value={
                "mode": "absolute",
                "steps": [{"color": c, "value": v} for v, c in BUDGET_STEPS],
            },
        ),
        models.DynamicConfigValue(id_val="min", value=0),
        models.DynamicConfigValue(id_val="max", value=1),
        models.DynamicConfigValue(
            id_val="custom.cellOptions",
            value=(
                {"type": "gauge", "mode": "basic", "valueDisplayMode": "text"}
                if gauge_cell
                else {"type": "color-text"}
            ),
        ),
    ]
    return panel.override_by_name(column, props)


def _table(
    grid: p.Grid,
    title: str,
    sql: str,
    *,
    columns: Sequence[str],
    gauges: Sequence[str] = (),
    colored: Sequence[str] = (),
    **kw: object,
) -> table.Panel:
    """``p.table_panel`` whose ``gauges`` / ``colored`` share columns get the budget colours."""
    special = set(gauges) | set(colored)
    panel = p.table_panel(
        grid,
        title,
        sql,
        columns=[c for c in columns if c not in special],
        **kw,  # type: ignore[arg-type]
    )
    for col in columns:
        if col in special:
            panel = _use_override(panel, col, gauge_cell=col in gauges)
    return panel


def build() -> models.Dashboard:
    grid = p.Grid()
    d = p.dashboard(
        UID,
        "tokenpipe / Budgets",
        "Spend against each budget's limit in its current period (as of the end of the time"
        " range), projected period-end spend, and budget threshold alerts. ClickHouse view of"
        " spend; the worker's ledger is authoritative and also counts reservations.",
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Budgets",
            f"SELECT count() AS budgets FROM ({STATUS})",
            unit=p.UNIT_COUNT,
            description="Budgets defined at the end of the time range that apply to the selection.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "At or over limit",
            f"SELECT countIf(used >= 1) AS over_limit FROM ({STATUS})",
            unit=p.UNIT_COUNT,
            steps=((None, "green"), (1, "red")),
            description="Budgets whose spend in the current period has reached the limit.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Projected over limit",
            f"SELECT countIf(projected_used >= 1) AS projected_over FROM ({STATUS})",
            unit=p.UNIT_COUNT,
            steps=((None, "green"), (1, "orange")),
            description="Budgets whose spend, continued at the period's pace so far, reaches"
            " the limit by the end of the period.",
        )
    )
    d = d.with_panel(
        p.gauge_panel(
            grid,
            "Highest budget use",
            f"SELECT max(used) AS used_share FROM ({STATUS})",
            unit=p.UNIT_SHARE,
            steps=BUDGET_STEPS,
            max_val=1.2,
            h=4,
            description="The largest share of its limit any budget has spent in its current"
            " period (per budget: the table below).",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Budget alerts",
            f"SELECT count() AS alerts FROM alerts FINAL WHERE {_ALERTS_WHERE}",
            unit=p.UNIT_COUNT,
            description="Threshold crossings in the time range (one per budget, period and"
            " threshold).",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Critical budget alerts",
            "SELECT count() AS critical_alerts FROM alerts FINAL"
            f" WHERE {_ALERTS_WHERE} AND severity = 'critical'",
            unit=p.UNIT_COUNT,
            steps=((None, "green"), (1, "red")),
            description="Crossings of 100% or of a budget's emergency threshold in the time range.",
        )
    )
    use_cols = [
        "budget_id",
        "name",
        "scope",
        "period",
        "mode",
        "used_share",
        "projected_share",
        "thresholds",
        "fired",
        "period_start",
        "period_end",
    ]
    d = d.with_panel(
        _table(
            grid,
            "Budget use, current period",
            "SELECT budget_id, budget_name AS name, scope_text AS scope, budget_period AS period,"
            " budget_mode AS mode, used AS used_share, projected_used AS projected_share,"
            f" thresholds, fired, period_start, period_end FROM ({STATUS})"
            " ORDER BY used_share DESC, budget_id",
            columns=use_cols,
            gauges=["used_share"],
            colored=["projected_share"],
            sort_by="used_share",
            h=7,
            description="One gauge per budget: share of the limit spent in the current period"
            " (colours at 50/75/90/100%; a budget's own thresholds are listed, those already"
            " alerted this period under 'fired'). projected_share: spend at the period's pace"
            " so far, extrapolated to the period end.",
        )
    )
    usd_cols = [
        "budget_id",
        "period",
        "limit_usd",
        "spent_usd",
        "remaining_usd",
        "projected_usd",
        "used_share",
    ]
    d = d.with_panel(
        _table(
            grid,
            "USD budgets: spent vs limit",
            "SELECT budget_id, budget_period AS period, budget_limit AS limit_usd,"
            " spent AS spent_usd, remaining AS remaining_usd, projected AS projected_usd,"
            f" used AS used_share FROM ({STATUS}) WHERE budget_unit = 'usd'"
            " ORDER BY used_share DESC, budget_id",
            columns=usd_cols,
            colored=["used_share"],
            w=12,
            h=7,
            description="USD budgets: limit, spend in the current period, remaining (limit −"
            " spent; reservations are not in ClickHouse) and the pace projection to the"
            " period end.",
        )
    )
    token_cols = [
        "budget_id",
        "period",
        "limit_tokens",
        "spent_tokens",
        "remaining_tokens",
        "projected_tokens",
        "used_share",
    ]
    d = d.with_panel(
        _table(
            grid,
            "Token budgets: spent vs limit",
            "SELECT budget_id, budget_period AS period, budget_limit AS limit_tokens,"
            " spent AS spent_tokens, remaining AS remaining_tokens,"
            f" projected AS projected_tokens, used AS used_share FROM ({STATUS})"
            " WHERE budget_unit = 'tokens' ORDER BY used_share DESC, budget_id",
            columns=token_cols,
            colored=["used_share"],
            w=12,
            h=7,
            description="Token budgets (input + output tokens): limit, spend in the current"
            " period, remaining and the pace projection to the period end.",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Budget alerts over time",
            "SELECT $__timeInterval(ts) AS time,"
            " concat(toString(JSONExtractUInt(data, 'threshold')), '%') AS threshold,"
            f" count() AS alerts FROM alerts FINAL WHERE {_ALERTS_WHERE}"
            " GROUP BY time, threshold ORDER BY time, threshold",
            unit=p.UNIT_COUNT,
            series_label="threshold",
            stacked=True,
            bars=True,
            min_interval="1d",
            description="Budget threshold crossings per day (or coarser bucket), stacked by"
            " threshold.",
        )
    )
    d = d.with_panel(
        p.barchart_panel(
            grid,
            "Use of limit per budget",
            "SELECT budget_id, used AS used_share, projected_used AS projected_share"
            f" FROM ({STATUS}) ORDER BY used_share DESC, budget_id",
            unit=p.UNIT_SHARE,
            x_field="budget_id",
            description="Share of the limit spent so far and projected at the period end.",
        )
    )
    alert_cols = [
        "ts",
        "budget_id",
        "threshold",
        "severity",
        "emergency",
        "period_start",
        "spent",
        "budget_limit",
        "unit",
        "mode",
        "tenant",
        "title",
    ]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Recent budget alerts",
            "SELECT ts, budget_id, JSONExtractUInt(data, 'threshold') AS threshold, severity,"
            " if(JSONExtractBool(data, 'emergency'), 'yes', '') AS emergency,"
            " parseDateTimeBestEffort(JSONExtractString(data, 'period_start')) AS period_start,"
            " toFloat64OrZero(JSONExtractString(data, 'spent')) AS spent,"
            " toFloat64OrZero(JSONExtractString(data, 'limit')) AS budget_limit,"
            " JSONExtractString(data, 'unit') AS unit, JSONExtractString(data, 'mode') AS mode,"
            f" tenant, title FROM alerts FINAL WHERE {_ALERTS_WHERE}"
            " ORDER BY ts DESC, budget_id LIMIT 200",
            columns=alert_cols,
            h=10,
            description="The latest 200 threshold crossings in the time range, with the"
            " threshold, the period they belong to and the spend when it was crossed (in the"
            " budget's unit: USD or tokens).",
        )
    )
    return d.build()
