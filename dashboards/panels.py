"""Shared building blocks of the tokenpipe dashboards: layout, variables, filters, panels.

Every dashboard module builds its panels with the factories below, so all panels
share the same conventions (the structural tests in ``tests/dashboards`` check them):

* Every panel and target uses the provisioned ClickHouse data source
  (``query.datasource_ref()``).
* Column naming carries the unit: ``*_usd`` columns are money (unit
  ``currencyUSD``), ``*_share`` columns are 0..1 ratios (``percentunit``),
  ``*_ratio`` columns are multipliers (``x`` suffix). Factories set the panel unit
  from ``unit=`` and tables get per-column overrides from these suffixes.
* Money and ratio panels carry thresholds.
* Template variables ``tenant``, ``team``, ``user``, ``feature``, ``model`` are
  multi-value query variables with "All"; queries filter with ``FILTERS``, which
  uses the plugin's ``$__conditionalAll`` so "All" costs nothing (``1=1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import barchart, common, gauge, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as models

from dashboards.query import ClickHouseQueryBuilder, datasource_ref

GRID_COLUMNS = 24

UNIT_USD = "currencyUSD"
UNIT_SHARE = "percentunit"
UNIT_COUNT = "short"
UNIT_RATIO = "suffix:x"
UNIT_TIME = "dateTimeAsIso"

#: Variables of every usage dashboard, in display order. Each later variable's
#: values are narrowed by the variables before it that it lists here.
VARIABLES: dict[str, tuple[str, ...]] = {
    "tenant": (),
    "team": ("tenant",),
    "user": ("tenant", "team"),
    "feature": ("tenant",),
    "model": ("tenant",),
}


def conditional_all(column: str, variable: str) -> str:
    """``column IN (<selected values>)``, or ``1=1`` when "All" is selected."""
    return f"$__conditionalAll({column} IN (${{{variable}}}), ${variable})"


def filters(names: Sequence[str] = tuple(VARIABLES)) -> str:
    """The AND of ``conditional_all`` over ``names`` (columns share the variables' names)."""
    return " AND ".join(conditional_all(n, n) for n in names)


FILTERS = filters()
"""Filter on every dashboard variable; usage_raw and the rollups share the column names."""


def variable(name: str) -> dash.QueryVariable:
    """A multi-value ClickHouse query variable with "All", narrowed by earlier variables.

    Values come from the daily rollup within the dashboard's time range (refreshed
    when the range changes), so the lists show what has data.
    """
    where = ["$__timeFilter(bucket)", *(conditional_all(p, p) for p in VARIABLES[name])]
    sql = f"SELECT DISTINCT {name} FROM usage_rollup_1d WHERE {' AND '.join(where)} ORDER BY {name}"
    return (
        dash.QueryVariable(name)
        .label(name.capitalize())
        .datasource(datasource_ref())
        .query(sql)
        .multi(True)
        .include_all(True)
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .current(models.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def dashboard(uid: str, title: str, description: str) -> dash.Dashboard:
    """A dashboard with tokenpipe defaults: fixed uid, UTC, last 7 days, the usage variables."""
    builder = (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["tokenpipe"])
        .timezone("utc")
        .time("now-7d", "now")
        .refresh("5m")
        .readonly()
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("tokenpipe dashboards")
            .type(models.DashboardLinkType.DASHBOARDS)
            .tags(["tokenpipe"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for name in VARIABLES:
        builder = builder.with_variable(variable(name))
    return builder


@dataclass
class Grid:
    """Places panels left to right in 24 columns, wrapping to a new line when full."""

    x: int = 0
    y: int = 0
    line_height: int = 0
    _next_id: int = field(default=1)

    def place(self, w: int, h: int) -> models.GridPos:
        if not 0 < w <= GRID_COLUMNS:
            raise ValueError(f"panel width {w} outside 1..{GRID_COLUMNS}")
        if self.x + w > GRID_COLUMNS:
            self.newline()
        pos = models.GridPos(h=h, w=w, x=self.x, y=self.y)
        self.x += w
        self.line_height = max(self.line_height, h)
        return pos

    def newline(self) -> None:
        self.y += self.line_height
        self.x = 0
        self.line_height = 0

    def next_id(self) -> int:
        pid = self._next_id
        self._next_id += 1
        return pid


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    """Absolute thresholds: ``(None, base colour)`` then ``(value, colour)`` steps."""
    return (
        dash.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=v, color=c) for v, c in steps])
    )


#: Default thresholds by unit: money grows from green to red; a share is neutral blue
#: unless the panel passes its own (e.g. cache-hit share: low is bad).
MONEY_THRESHOLDS = ((None, "green"), (100.0, "orange"), (1000.0, "red"))
SHARE_THRESHOLDS = ((None, "blue"), (0.5, "orange"), (0.8, "red"))
NEUTRAL_THRESHOLDS = ((None, "blue"),)


def _default_thresholds(unit: str) -> tuple[tuple[float | None, str], ...]:
    if unit == UNIT_USD:
        return MONEY_THRESHOLDS
    if unit == UNIT_SHARE:
        return SHARE_THRESHOLDS
    return NEUTRAL_THRESHOLDS


def unit_for_column(name: str) -> str | None:
    """The unit a column's name asks for (the suffix convention), or None."""
    if name.endswith("_usd"):
        return UNIT_USD
    if name.endswith("_share"):
        return UNIT_SHARE
    if name.endswith("_ratio"):
        return UNIT_RATIO
    if name in ("ts", "time", "last_seen"):
        return UNIT_TIME
    return None


def _unit_overrides(columns: Sequence[str]) -> list[tuple[str, list[models.DynamicConfigValue]]]:
    out = []
    for col in columns:
        unit = unit_for_column(col)
        if unit is None:
            continue
        props = [models.DynamicConfigValue(id_val="unit", value=unit)]
        if unit == UNIT_USD:
            props.append(models.DynamicConfigValue(id_val="decimals", value=4))
        out.append((col, props))
    return out


def stat_panel(
    grid: Grid,
    title: str,
    sql: str,
    *,
    unit: str,
    description: str,
    w: int = 4,
    h: int = 4,
    decimals: int | None = None,
    steps: Sequence[tuple[float | None, str]] | None = None,
) -> stat.Panel:
    """A single-number panel over a one-row table query."""
    panel = (
        stat.Panel()
        .id(grid.next_id())
        .title(title)
        .description(description)
        .datasource(datasource_ref())
        .grid_pos(grid.place(w, h))
        .with_target(ClickHouseQueryBuilder(sql).table())
        .unit(unit)
        .thresholds(thresholds(*(steps or _default_thresholds(unit))))
        .color_mode(common_models.BigValueColorMode.VALUE)
        .graph_mode(common_models.BigValueGraphMode.NONE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def gauge_panel(
    grid: Grid,
    title: str,
    sql: str,
    *,
    unit: str,
    description: str,
    steps: Sequence[tuple[float | None, str]],
    w: int = 4,
    h: int = 6,
    max_val: float = 1.0,
) -> gauge.Panel:
    """A gauge over a one-row table query (ratios: 0..1)."""
    return (
        gauge.Panel()
        .id(grid.next_id())
        .title(title)
        .description(description)
        .datasource(datasource_ref())
        .grid_pos(grid.place(w, h))
        .with_target(ClickHouseQueryBuilder(sql).table())
        .unit(unit)
        .min(0)
        .max(max_val)
        .thresholds(thresholds(*steps))
        .show_threshold_markers(True)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def timeseries_panel(
    grid: Grid,
    title: str,
    sql: str,
    *,
    unit: str,
    description: str,
    series_label: str | None = None,
    stacked: bool = False,
    bars: bool = False,
    w: int = 12,
    h: int = 8,
    min_interval: str = "1h",
) -> timeseries.Panel:
    """A time series over a ``format = time series`` query.

    The query returns ``time`` first, then (optionally) one string column
    ``series_label`` that splits series, then numbers; the plugin pivots long to
    wide and labels each series with that column's value. ``min_interval`` keeps
    ``$__timeInterval`` no finer than the rollup the query reads.
    """
    panel = (
        timeseries.Panel()
        .id(grid.next_id())
        .title(title)
        .description(description)
        .datasource(datasource_ref())
        .grid_pos(grid.place(w, h))
        .interval(min_interval)
        .with_target(ClickHouseQueryBuilder(sql).time_series())
        .unit(unit)
        .thresholds(thresholds(*_default_thresholds(unit)))
        .fill_opacity(60 if stacked else 10)
        .line_width(1)
        .legend(
            common.VizLegendOptions()
            .display_mode(common_models.LegendDisplayMode.TABLE)
            .placement(common_models.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["sum"] if unit == UNIT_USD else ["mean"])
        )
        .tooltip(
            common.VizTooltipOptions()
            .mode(common_models.TooltipDisplayMode.MULTI)
            .sort(common_models.SortOrder.DESCENDING)
        )
    )
    if bars:
        panel = panel.draw_style(common_models.GraphDrawStyle.BARS)
    if stacked:
        panel = panel.stacking(
            common.StackingConfig().mode(common_models.StackingMode.NORMAL).group("A")
        )
    if series_label:
        panel = panel.display_name(f"${{__field.labels.{series_label}}}")
    return panel


def table_panel(
    grid: Grid,
    title: str,
    sql: str,
    *,
    columns: Sequence[str],
    description: str,
    w: int = 24,
    h: int = 9,
    sort_by: str | None = None,
) -> table.Panel:
    """A table; ``columns`` are the query's output columns, in order.

    Columns get units from their names (``unit_for_column``); the tests check the
    query really returns ``columns``.
    """
    panel = (
        table.Panel()
        .id(grid.next_id())
        .title(title)
        .description(description)
        .datasource(datasource_ref())
        .grid_pos(grid.place(w, h))
        .with_target(ClickHouseQueryBuilder(sql).table())
        .unit(UNIT_COUNT)
        .thresholds(thresholds(*NEUTRAL_THRESHOLDS))
        .filterable(True)
    )
    for col, props in _unit_overrides(columns):
        panel = panel.override_by_name(col, props)
    if sort_by:
        panel = panel.sort_by([common.TableSortByFieldState().display_name(sort_by).desc(True)])
    return panel


def barchart_panel(
    grid: Grid,
    title: str,
    sql: str,
    *,
    unit: str,
    x_field: str,
    description: str,
    stacked: bool = False,
    w: int = 12,
    h: int = 8,
) -> barchart.Panel:
    """A bar chart over a table query: ``x_field`` (string) first, then numbers."""
    panel = (
        barchart.Panel()
        .id(grid.next_id())
        .title(title)
        .description(description)
        .datasource(datasource_ref())
        .grid_pos(grid.place(w, h))
        .with_target(ClickHouseQueryBuilder(sql).table())
        .unit(unit)
        .thresholds(thresholds(*_default_thresholds(unit)))
        .x_field(x_field)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .show_value(common_models.VisibilityMode.AUTO)
        .fill_opacity(80)
        .legend(
            common.VizLegendOptions()
            .show_legend(True)
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
        )
    )
    if stacked:
        panel = panel.stacking(common_models.StackingMode.NORMAL)
    return panel
