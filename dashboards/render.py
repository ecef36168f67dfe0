"""Render the generated dashboards offline: HTML page or PNG, from the panels' own SQL.

Every panel is drawn from its target's ``rawSql``, expanded exactly as Grafana and
the ClickHouse plugin would (``dashboards.execute`` / ``dashboards.macros``) for the
given time range with every variable at "All", and run against a ``Store``. No
Grafana, no network, no JavaScript:

* ``render_html(store, dashboard, time_from, time_to) -> str``: a self-contained
  page. The panels sit in a 24-column CSS grid laid out from ``gridPos``; stats and
  gauges are big numbers in the panel's unit and threshold colour (gauges with an
  inline SVG arc), tables are HTML tables with the per-column unit overrides, time
  series and bar charts are inline SVG drawn by matplotlib (text kept as text).
  The expanded SQL of every panel is listed under "Queries".
* ``render_png(store, dashboard, time_from, time_to, path)``: the same dashboard as
  one PNG (matplotlib, Agg), 1600 px wide, 38 px per grid row as in Grafana.
* ``render_all(store, out_dir, fmt)``: ``<uid>.html`` / ``<uid>.png`` for every
  dashboard of ``dashboards.catalog``.
* ``render_report(store, path, fmt, dashboards, time_from, time_to)``: what
  ``tokenpipe report --html FILE`` / ``--png FILE`` call: ONE file with the selected
  dashboards (default: all) one under another, as one HTML page or one tall PNG.

Units follow Grafana's: ``currencyUSD`` → ``$1,234.56``, ``percentunit`` →
``12.3%``, ``short`` → ``1.2M``, ``suffix:x`` → ``3.4x``; the panel's ``decimals``
(and table overrides) win. A panel whose query returns no rows (or only NULL/NaN)
shows "No data"; a query that fails shows its error in the panel (``strict=True``
raises instead).

Time series follow Grafana's long-to-wide rule: the first time column is the x
axis, string columns are labels (one series per label set and numeric column),
named by ``displayName`` (``${__field.labels.<name>}``), else the label values, else
the column. ``custom.stacking.mode == "normal"`` stacks (missing points count as
0); ``drawStyle == "bars"`` draws bars. The x axis is the time range, widened to
the data when a query returns buckets outside it (the forecast's "this month").
"""

from __future__ import annotations

import html
import io
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dashboards.execute import (
    PanelQuery,
    Result,
    iter_panels,
    panel_queries,
    resolve_variables,
    run_panel_query,
)
from dashboards.macros import ALL, Selection
from pipeline.store import Store

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

JSON_DIR = Path(__file__).resolve().parent / "json"

PAGE_WIDTH = 1600
"""Pixel width of a rendered dashboard (PNG and the HTML grid)."""
ROW_PX = 30
GAP_PX = 8
DPI = 100

BG = "#111217"
PANEL_BG = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
MUTED = "#8e8e9e"
GRID = "#2c3235"

COLORS = {
    "green": "#73BF69",
    "orange": "#FF9830",
    "red": "#F2495C",
    "blue": "#5794F2",
    "yellow": "#FADE2A",
    "purple": "#B877D9",
    "text": TEXT,
}
PALETTE = (
    "#7EB26D",
    "#EAB839",
    "#6ED0E0",
    "#EF843C",
    "#E24D42",
    "#1F78C1",
    "#BA43A9",
    "#705DA0",
    "#508642",
    "#CCA300",
    "#447EBC",
    "#C15C17",
)

NO_DATA = "No data"

# --- loading ----------------------------------------------------------------------------


def load_dashboards(uids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The checked-in dashboard JSON, in catalog order (or the order of ``uids``)."""
    import json

    from dashboards import catalog

    order = list(uids) if uids else list(catalog.builders())
    out = []
    for uid in order:
        path = JSON_DIR / f"{uid}.json"
        if not path.exists():
            known = ", ".join(catalog.builders())
            raise ValueError(f"unknown dashboard {uid!r}; known: {known}")
        out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


_RELATIVE = re.compile(r"^now-(\d+)([mhdw])$")


def default_range(
    dashboard: Mapping[str, Any] | None = None, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """The dashboard's default time range (``now-7d`` .. now when not ``now-N[mhdw]``)."""
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    text = str(((dashboard or {}).get("time") or {}).get("from", "now-7d"))
    m = _RELATIVE.match(text)
    n, unit = (int(m.group(1)), m.group(2)) if m else (7, "d")
    seconds = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[unit]
    return end - timedelta(seconds=n * seconds), end


def _utc_naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


# --- running the panels -----------------------------------------------------------------


@dataclass(frozen=True)
class PanelData:
    """One panel and what its (first) query returned."""

    panel: Mapping[str, Any]
    result: Result | None
    error: str | None = None
    sql: str = ""

    @property
    def title(self) -> str:
        return str(self.panel.get("title", ""))

    @property
    def type(self) -> str:
        return str(self.panel.get("type", ""))

    @property
    def grid(self) -> tuple[int, int, int, int]:
        g = self.panel.get("gridPos", {})
        return int(g.get("x", 0)), int(g.get("y", 0)), int(g.get("w", 12)), int(g.get("h", 8))

    @property
    def defaults(self) -> Mapping[str, Any]:
        return self.panel.get("fieldConfig", {}).get("defaults", {})

    @property
    def unit(self) -> str:
        return str(self.defaults.get("unit") or "short")

    @property
    def decimals(self) -> int | None:
        d = self.defaults.get("decimals")
        return int(d) if d is not None else None

    def column_unit(self, column: str) -> tuple[str, int | None]:
        """(unit, decimals) of a table column: its byName override, else the defaults."""
        unit, decimals = self.unit, self.decimals
        for o in self.panel.get("fieldConfig", {}).get("overrides", []):
            matcher = o.get("matcher", {})
            if matcher.get("id") == "byName" and matcher.get("options") == column:
                for prop in o.get("properties", []):
                    if prop.get("id") == "unit":
                        unit = str(prop.get("value"))
                    elif prop.get("id") == "decimals":
                        decimals = int(prop["value"])
        return unit, decimals

    @property
    def has_data(self) -> bool:
        if self.result is None or not self.result.rows:
            return False
        return any(
            _number(v) is not None or isinstance(v, str) for r in self.result.rows for v in r
        )


@dataclass(frozen=True)
class DashboardData:
    dashboard: Mapping[str, Any]
    time_from: datetime
    time_to: datetime
    panels: list[PanelData]

    @property
    def title(self) -> str:
        return str(self.dashboard.get("title", self.dashboard.get("uid", "")))

    @property
    def uid(self) -> str:
        return str(self.dashboard.get("uid", ""))

    @property
    def grid_rows(self) -> int:
        return max((p.grid[1] + p.grid[3] for p in self.panels), default=0)


def collect(
    store: Store,
    dashboard: Mapping[str, Any],
    time_from: datetime,
    time_to: datetime,
    *,
    strict: bool = False,
) -> DashboardData:
    """Resolve the variables ("All") and run every panel's first query."""
    try:
        selections, options = resolve_variables(store, dashboard, time_from, time_to)
    except Exception:
        if strict:
            raise
        selections = {}
        options = {}
    for var in dashboard.get("templating", {}).get("list", []):
        selections.setdefault(var["name"], ALL)
        options.setdefault(var["name"], [])
    firsts: dict[Any, PanelQuery] = {}
    for q in panel_queries(dashboard):
        firsts.setdefault(q.panel_id, q)
    panels: list[PanelData] = []
    for panel in iter_panels(dashboard):
        found = firsts.get(panel.get("id"))
        if found is None:
            panels.append(PanelData(panel, None))
            continue
        panels.append(_run(store, found, time_from, time_to, selections, options, strict))
    panels.sort(key=lambda p: (p.grid[1], p.grid[0]))
    return DashboardData(dashboard, time_from, time_to, panels)


def _run(
    store: Store,
    q: PanelQuery,
    time_from: datetime,
    time_to: datetime,
    selections: Mapping[str, Selection],
    options: Mapping[str, Sequence[str]],
    strict: bool,
) -> PanelData:
    try:
        result = run_panel_query(store, q, time_from, time_to, selections, options)
    except Exception as exc:
        if strict:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return PanelData(q.panel, None, error=message[:300])
    return PanelData(q.panel, result, sql=result.sql)


# --- values and units -------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        x = float(value)
        return None if math.isnan(x) or math.isinf(x) else x
    return None


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _auto_decimals(x: float) -> int:
    """Decimals that keep three significant digits of a small number (at most 6)."""
    if x == 0:
        return 0
    return max(0, min(6, 2 - math.floor(math.log10(abs(x)))))


def _short(x: float, decimals: int | None) -> str:
    ax = abs(x)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if ax >= scale:
            v = x / scale
            d = (
                decimals
                if decimals is not None
                else (0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2)
            )
            return _trim(f"{v:.{d}f}") + suffix
    if decimals is not None:
        return f"{x:.{decimals}f}"
    if x == int(x):
        return str(int(x))
    return _trim(f"{x:.{_auto_decimals(x) if ax < 10 else 1}f}")


def format_value(value: Any, unit: str = "short", decimals: int | None = None) -> str:
    """A value as Grafana shows it in ``unit`` (``decimals`` when given)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _utc_naive(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    x = _number(value)
    if x is None:
        return "NaN" if isinstance(value, float) else str(value)
    if unit == "currencyUSD":
        d = decimals if decimals is not None else (2 if abs(x) >= 1 else _auto_decimals(x))
        d = max(d, 2) if decimals is None else d
        return f"{'-' if x < 0 else ''}${abs(x):,.{d}f}"
    if unit == "percentunit" or unit == "percent":
        p = x * 100 if unit == "percentunit" else x
        d = decimals if decimals is not None else (1 if abs(p) >= 1 or p == 0 else 2)
        return f"{p:.{d}f}%"
    if unit.startswith("suffix:"):
        return _short(x, decimals) + unit[len("suffix:") :]
    if unit.startswith("prefix:"):
        return unit[len("prefix:") :] + _short(x, decimals)
    if unit == "none":
        return _trim(f"{x:.{decimals if decimals is not None else 6}f}")
    return _short(x, decimals)


def threshold_color(panel: PanelData, value: float | None) -> str:
    """The colour of the last threshold step at or below ``value`` (absolute mode)."""
    steps = panel.defaults.get("thresholds", {}).get("steps", [])
    color = "green"
    for step in steps:
        limit = step.get("value")
        if limit is None or (value is not None and value >= float(limit)):
            color = str(step.get("color", color))
    return COLORS.get(color, color)


def single_value(panel: PanelData) -> float | None:
    """Stat/gauge value: the last non-null number of the first numeric column."""
    if panel.result is None:
        return None
    for i, (_, ctype) in enumerate(panel.result.columns):
        if _kind(ctype) == "number":
            values = [_number(r[i]) for r in panel.result.rows]
            found = [v for v in values if v is not None]
            return found[-1] if found else None
    return None


# --- shaping results --------------------------------------------------------------------


def _kind(ctype: str) -> str:
    t = ctype.replace("Nullable(", "").replace("LowCardinality(", "")
    if t.startswith("DateTime") or t.startswith("Date"):
        return "time"
    if t.startswith(("Int", "UInt", "Float", "Decimal")):
        return "number"
    return "string"


@dataclass
class Series:
    name: str
    points: dict[datetime, float]


_LABEL_NAME = re.compile(r"\$\{__field\.labels\.(\w+)\}")


def time_series(panel: PanelData) -> list[Series]:
    """Grafana's long-to-wide frames: one series per (label values, numeric column)."""
    res = panel.result
    if res is None:
        return []
    kinds = [_kind(t) for _, t in res.columns]
    if "time" not in kinds:
        return []
    t_idx = kinds.index("time")
    labels = [i for i, k in enumerate(kinds) if k == "string"]
    values = [i for i, k in enumerate(kinds) if k == "number"]
    display = str(panel.defaults.get("displayName") or "")
    m = _LABEL_NAME.fullmatch(display)
    series: dict[tuple[str, ...], Series] = {}
    for row in res.rows:
        t = row[t_idx]
        if not isinstance(t, datetime):
            t = datetime(t.year, t.month, t.day) if isinstance(t, date) else None
        if t is None:
            continue
        label_values = {res.names[i]: str(row[i]) for i in labels}
        for i in values:
            key = (*label_values.values(), res.names[i])
            if key not in series:
                if m and m.group(1) in label_values:
                    name = label_values[m.group(1)]
                elif label_values:
                    name = ", ".join(label_values.values())
                    if len(values) > 1:
                        name = f"{res.names[i]} {name}"
                else:
                    name = res.names[i]
                series[key] = Series(name or "(empty)", {})
            v = _number(row[i])
            if v is not None:
                series[key].points[_utc_naive(t)] = v
    return [s for s in series.values() if s.points]


def bar_data(panel: PanelData) -> tuple[list[str], list[tuple[str, list[float]]]]:
    """(categories, [(column, values)]) of a bar chart: ``xField`` then numeric columns."""
    res = panel.result
    if res is None or not res.rows:
        return [], []
    names = res.names
    x_field = panel.panel.get("options", {}).get("xField")
    kinds = [_kind(t) for _, t in res.columns]
    x_idx = names.index(x_field) if x_field in names else kinds.index("string")
    cats = [format_value(r[x_idx]) for r in res.rows]
    cols = [
        (names[i], [_number(r[i]) or 0.0 for r in res.rows])
        for i, k in enumerate(kinds)
        if k == "number" and i != x_idx
    ]
    return cats, cols


def table_cells(panel: PanelData) -> tuple[list[str], list[list[str]], list[bool]]:
    """(headers, formatted rows, right-aligned per column) of a table panel."""
    res = panel.result
    if res is None:
        return [], [], []
    units = [panel.column_unit(n) for n in res.names]
    numeric = [_kind(t) == "number" for _, t in res.columns]
    rows = []
    for r in res.rows:
        cells = []
        for v, (unit, dec), num in zip(r, units, numeric, strict=True):
            cells.append(format_value(v, unit if num else "short", dec))
        rows.append(cells)
    return list(res.names), rows, numeric


def _legend_calc(panel: PanelData) -> str | None:
    legend = panel.panel.get("options", {}).get("legend", {})
    calcs = legend.get("calcs") or []
    return str(calcs[0]) if calcs and legend.get("displayMode") == "table" else None


def _calc(name: str, values: Sequence[float]) -> float | None:
    if not values:
        return None
    if name == "sum":
        return sum(values)
    if name == "mean":
        return sum(values) / len(values)
    if name == "max":
        return max(values)
    if name == "min":
        return min(values)
    return values[-1]  # last / lastNotNull


# --- matplotlib drawing (PNG, and the charts of the HTML page) --------------------------


def _pt(px: float) -> float:
    return px * 72 / DPI


def _unit_formatter(unit: str) -> Any:
    from matplotlib.ticker import FuncFormatter

    def fmt(x: float, _pos: int | None = None) -> str:
        if unit == "currencyUSD":
            ax = abs(x)
            if ax >= 1000:
                return ("-" if x < 0 else "") + "$" + _short(ax, None)
            if x == round(x):
                return format_value(x, unit, 0)
            return format_value(x, unit, 2 if ax >= 0.1 else None)
        if unit == "percentunit":
            return _trim(f"{x * 100:.1f}") + "%"
        return format_value(x, unit)

    return FuncFormatter(fmt)


def _style_axes(ax: Axes, unit: str, value_axis: Literal["x", "y"] = "y") -> None:
    ax.set_facecolor("none")
    for side, spine in ax.spines.items():
        spine.set_visible(side in ("bottom", "left"))
        spine.set_color(BORDER)
    ax.tick_params(colors=MUTED, labelsize=_pt(11), length=3)
    ax.grid(True, axis=value_axis, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    (ax.yaxis if value_axis == "y" else ax.xaxis).set_major_formatter(_unit_formatter(unit))


class _Canvas:
    """An axes over a pixel box of the figure, with pixel data coordinates (y up)."""

    def __init__(self, fig: Figure, box: tuple[float, float, float, float]) -> None:
        self.fig = fig
        self.left, self.top, self.width, self.height = box
        fw, fh = fig.get_size_inches() * DPI
        self.ax = fig.add_axes(
            (self.left / fw, 1 - (self.top + self.height) / fh, self.width / fw, self.height / fh)
        )
        self.ax.set_xlim(0, self.width)
        self.ax.set_ylim(0, self.height)
        self.ax.axis("off")

    def text(self, x: float, y_top: float, s: str, size_px: float, **kw: Any) -> None:
        """Text at ``x`` and ``y_top`` pixels from the box's top."""
        kw.setdefault("color", TEXT)
        kw.setdefault("va", "center")
        self.ax.text(x, self.height - y_top, s, fontsize=_pt(size_px), **kw)

    def rect(self, x: float, y_top: float, w: float, h: float, **kw: Any) -> None:
        from matplotlib.patches import Rectangle

        kw.setdefault("linewidth", 0)
        self.ax.add_patch(Rectangle((x, self.height - y_top - h), w, h, **kw))


def _fig_axes(fig: Figure, box: tuple[float, float, float, float]) -> Axes:
    left, top, width, height = box
    fw, fh = fig.get_size_inches() * DPI
    return fig.add_axes((left / fw, 1 - (top + height) / fh, width / fw, height / fh))


def _truncate(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "…"


def _draw_legend(
    fig: Figure,
    box: tuple[float, float, float, float],
    entries: Sequence[tuple[str, str, str]],
    header: str | None,
) -> None:
    """Right-hand legend: colour, name, and a calc value column when ``header``."""
    c = _Canvas(fig, box)
    line = 17.0
    y = 8.0
    size = 11.0
    value_w = max((len(v) for _, _, v in entries), default=0) * 6.6 + 4 if header else 0
    name_chars = int((c.width - 20 - value_w) / 6.4)
    if header:
        c.text(18, y, "Name", size, color=MUTED)
        c.text(c.width - 2, y, header.capitalize(), size, color=MUTED, ha="right")
        y += line
    fit = int((c.height - y) // line)
    shown = entries if len(entries) <= fit else entries[: max(fit - 1, 0)]
    for name, color, value in shown:
        c.rect(2, y - 4, 11, 8, facecolor=color)
        c.text(18, y, _truncate(name, name_chars), size)
        if header:
            c.text(c.width - 2, y, value, size, ha="right")
        y += line
    if len(shown) < len(entries):
        c.text(18, y, f"+{len(entries) - len(shown)} more", size, color=MUTED)


def _draw_bottom_legend(
    fig: Figure, box: tuple[float, float, float, float], entries: Sequence[tuple[str, str]]
) -> None:
    c = _Canvas(fig, box)
    x = 4.0
    for name, color in entries:
        width = 16 + len(name) * 6.6 + 14
        if x + width > c.width:
            break
        c.rect(x, c.height / 2 - 4, 11, 8, facecolor=color)
        c.text(x + 16, c.height / 2, name, 11)
        x += width


def _draw_no_data(fig: Figure, box: tuple[float, float, float, float], text: str) -> None:
    c = _Canvas(fig, box)
    color = COLORS["red"] if text != NO_DATA else MUTED
    chars = max(int(c.width / 7.5), 10)
    lines = [text[i : i + chars] for i in range(0, min(len(text), chars * 3), chars)]
    c.ax.text(
        c.width / 2,
        c.height / 2,
        "\n".join(lines),
        fontsize=_pt(14 if text == NO_DATA else 11),
        color=color,
        ha="center",
        va="center",
    )


def _draw_timeseries(
    fig: Figure, box: tuple[float, float, float, float], panel: PanelData, data: DashboardData
) -> None:
    import matplotlib.dates as mdates

    series = time_series(panel)
    if not series:
        _draw_no_data(fig, box, NO_DATA)
        return
    left, top, width, height = box
    custom = panel.defaults.get("custom", {})
    stacked = (custom.get("stacking") or {}).get("mode") == "normal"
    bars = custom.get("drawStyle") == "bars"
    calc = _legend_calc(panel)
    legend = panel.panel.get("options", {}).get("legend", {})
    right = legend.get("showLegend", True) and legend.get("placement") == "right"
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    entries = [
        (
            s.name,
            colors[i],
            format_value(_calc(calc or "", list(s.points.values())), panel.unit, panel.decimals)
            if calc
            else "",
        )
        for i, s in enumerate(series)
    ]
    legend_w = 0.0
    if right:
        longest = max(len(n) for n, _, _ in entries)
        value_w = max(len(v) for _, _, v in entries) * 6.6 if calc else 0
        legend_w = min(width * 0.42, 32 + longest * 6.4 + value_w)
        _draw_legend(fig, (left + width - legend_w, top, legend_w, height), entries, calc)
    bottom_legend = 0.0
    if legend.get("showLegend", True) and not right:
        bottom_legend = 20.0
        _draw_bottom_legend(
            fig,
            (left + 50, top + height - bottom_legend, width - 50, bottom_legend),
            [(n, c) for n, c, _ in entries],
        )
    ax = _fig_axes(
        fig, (left + 58, top + 6, width - 58 - legend_w - 10, height - 28 - bottom_legend)
    )
    _style_axes(ax, panel.unit)
    times = sorted({t for s in series for t in s.points})
    step = _step(times, panel)
    x_all = mdates.date2num(times)
    base = [0.0] * len(times)
    for s, color in zip(series, colors, strict=True):
        if stacked:
            ys = [s.points.get(t, 0.0) for t in times]
            if bars:
                ax.bar(x_all, ys, width=step * 0.85, bottom=base, color=color, linewidth=0)
            else:
                top_ = [b + y for b, y in zip(base, ys, strict=True)]
                ax.fill_between(x_all, base, top_, color=color, alpha=0.35, linewidth=0)
                ax.plot(x_all, top_, color=color, linewidth=1.2)
            base = [b + y for b, y in zip(base, ys, strict=True)]
        else:
            pts = sorted(s.points.items())
            xs = mdates.date2num([t for t, _ in pts])
            ys = [v for _, v in pts]
            if bars:
                ax.bar(xs, ys, width=step * 0.85, color=color, alpha=0.8, linewidth=0)
            else:
                ax.plot(xs, ys, color=color, linewidth=1.3)
    lo = min(_utc_naive(data.time_from), times[0])
    hi = max(_utc_naive(data.time_to), times[-1] + (timedelta(days=step) if bars else timedelta()))
    ax.set_xlim(mdates.date2num(lo), mdates.date2num(hi))
    if panel.defaults.get("min") is not None:
        ax.set_ylim(bottom=float(panel.defaults["min"]))
    elif stacked or bars or min(min(s.points.values()) for s in series) >= 0:
        ax.set_ylim(bottom=0)
    if panel.defaults.get("max") is not None:
        ax.set_ylim(top=float(panel.defaults["max"]))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=max(3, int(ax.bbox.width / 90)))
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, show_offset=False)
    formatter.formats = ["%Y", "%b", "%m-%d", "%H:%M", "%H:%M", "%S.%f"]
    formatter.zero_formats = ["", "%Y", "%b", "%m-%d", "%H:%M", "%H:%M"]
    ax.xaxis.set_major_formatter(formatter)
    ax.yaxis.set_major_locator(_max_n_locator(max(2, int(ax.bbox.height / 40))))


def _max_n_locator(n: int) -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=n, min_n_ticks=2)


def _step(times: Sequence[datetime], panel: PanelData) -> float:
    """Bucket width in days (for bar widths)."""
    if len(times) >= 2:
        return min((b - a).total_seconds() for a, b in itertools.pairwise(times)) / 86400
    interval = str(panel.panel.get("interval") or "1h")
    return {"1d": 1.0}.get(interval, 1 / 24)


def _draw_barchart(fig: Figure, box: tuple[float, float, float, float], panel: PanelData) -> None:
    cats, cols = bar_data(panel)
    if not cats or not cols:
        _draw_no_data(fig, box, NO_DATA)
        return
    left, top, width, height = box
    options = panel.panel.get("options", {})
    stacked = options.get("stacking", "none") == "normal"
    horizontal = options.get("orientation", "horizontal") != "vertical"
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(cols))]
    legend_h = 20.0 if options.get("legend", {}).get("showLegend", True) else 0.0
    label_w = min(max(len(c) for c in cats) * 6.6 + 12, width * 0.35) if horizontal else 40
    ax = _fig_axes(fig, (left + label_w, top + 4, width - label_w - 12, height - 24 - legend_h))
    _style_axes(ax, panel.unit, "x" if horizontal else "y")
    n = len(cats)
    positions = list(range(n))
    group = 0.7
    base = [0.0] * n
    for k, ((_, values), color) in enumerate(zip(cols, colors, strict=True)):
        if stacked or len(cols) == 1:
            offs, size = [float(p) for p in positions], group
        else:
            size = group / len(cols)
            offs = [p - group / 2 + size * (k + 0.5) for p in positions]
        if horizontal:
            bars = ax.barh(offs, values, height=size, left=base if stacked else None, color=color)
        else:
            bars = ax.bar(offs, values, width=size, bottom=base if stacked else None, color=color)
        if len(cols) == 1:
            labels = [format_value(v, panel.unit, panel.decimals) for v in values]
            ax.bar_label(bars, labels=labels, padding=3, color=TEXT, fontsize=_pt(10.5))
        if stacked:
            base = [b + v for b, v in zip(base, values, strict=True)]
    if stacked and len(cols) > 1:
        totals = [format_value(b, panel.unit, panel.decimals) for b in base]
        for p, b, t in zip(positions, base, totals, strict=True):
            xy = (b, p) if horizontal else (p, b)
            ax.annotate(
                t,
                xy,
                xytext=(3, 0) if horizontal else (0, 3),
                textcoords="offset points",
                va="center" if horizontal else "bottom",
                ha="left" if horizontal else "center",
                color=TEXT,
                fontsize=_pt(10.5),
            )
    peak = max(base) if stacked else max(max(v) for _, v in cols)
    if horizontal:
        ax.set_yticks(positions, [_truncate(c, int(label_w / 6.6)) for c in cats])
        ax.invert_yaxis()
        ax.set_xlim(0, peak * 1.22 if peak > 0 else 1)
        ax.xaxis.set_major_locator(_max_n_locator(max(2, int(ax.bbox.width / 110))))
    else:
        ax.set_xticks(positions, cats)
        ax.set_ylim(0, peak * 1.15 if peak > 0 else 1)
    if legend_h:
        _draw_bottom_legend(
            fig,
            (left + label_w, top + height - legend_h, width - label_w, legend_h),
            [(name, c) for (name, _), c in zip(cols, colors, strict=True)],
        )


def _fit_font(text: str, width: float, height: float, biggest: float = 44) -> float:
    return max(10.0, min(biggest, height * 0.55, width / max(len(text), 1) / 0.62))


def _draw_stat(fig: Figure, box: tuple[float, float, float, float], panel: PanelData) -> None:
    value = single_value(panel)
    if value is None:
        _draw_no_data(fig, box, NO_DATA)
        return
    c = _Canvas(fig, box)
    text = format_value(value, panel.unit, panel.decimals)
    size = _fit_font(text, c.width * 0.9, c.height)
    c.text(
        c.width / 2,
        c.height / 2,
        text,
        size,
        ha="center",
        color=threshold_color(panel, value),
        fontweight="bold",
    )


def _gauge_range(panel: PanelData) -> tuple[float, float]:
    lo = float(panel.defaults.get("min") or 0)
    hi = panel.defaults.get("max")
    return lo, float(hi) if hi is not None else (1.0 if panel.unit == "percentunit" else 100.0)


GAUGE_START, GAUGE_SWEEP = 210.0, 240.0


def _gauge_geometry(width: float, height: float) -> tuple[float, float, float]:
    """(radius, centre x, centre y from the top) of a gauge arc filling the box."""
    r = min(width / 2, height / 1.5) * 0.94
    return r, width / 2, (height - 1.5 * r) / 2 + r


def _threshold_bands(panel: PanelData, lo: float, hi: float) -> list[tuple[float, float, str]]:
    steps = panel.defaults.get("thresholds", {}).get("steps", [])
    bands = []
    for i, step in enumerate(steps):
        start = lo if step.get("value") is None else float(step["value"])
        end = hi if i + 1 >= len(steps) else float(steps[i + 1]["value"])
        f0 = min(max((start - lo) / (hi - lo), 0), 1)
        f1 = min(max((end - lo) / (hi - lo), 0), 1)
        if f1 > f0:
            bands.append((f0, f1, COLORS.get(step.get("color", ""), step.get("color", "green"))))
    return bands


def _draw_gauge(fig: Figure, box: tuple[float, float, float, float], panel: PanelData) -> None:
    from matplotlib.patches import Wedge

    value = single_value(panel)
    if value is None:
        _draw_no_data(fig, box, NO_DATA)
        return
    c = _Canvas(fig, box)
    lo, hi = _gauge_range(panel)
    frac = min(max((value - lo) / (hi - lo), 0.0), 1.0) if hi > lo else 0.0
    r, cx, cy = _gauge_geometry(c.width, c.height)
    cy = c.height - cy  # the canvas has y up
    color = threshold_color(panel, value)
    ring = r * 0.2
    c.ax.add_patch(
        Wedge((cx, cy), r * 0.9, GAUGE_START - GAUGE_SWEEP, GAUGE_START, width=ring, color=BORDER)
    )
    end = GAUGE_START - GAUGE_SWEEP * frac
    c.ax.add_patch(Wedge((cx, cy), r * 0.9, end, GAUGE_START, width=ring, color=color))
    for f0, f1, band in _threshold_bands(panel, lo, hi):
        a1, a0 = GAUGE_START - GAUGE_SWEEP * f0, GAUGE_START - GAUGE_SWEEP * f1
        c.ax.add_patch(Wedge((cx, cy), r, a0, a1, width=r * 0.06, color=band))
    text = format_value(value, panel.unit, panel.decimals)
    size = _fit_font(text, r * 0.95, r * 0.8, 38)
    c.ax.text(
        cx, cy, text, fontsize=_pt(size), color=color, ha="center", va="center", fontweight="bold"
    )


def _draw_table(fig: Figure, box: tuple[float, float, float, float], panel: PanelData) -> None:
    headers, rows, right = table_cells(panel)
    if not rows:
        _draw_no_data(fig, box, NO_DATA)
        return
    c = _Canvas(fig, box)
    size = 11.0
    char = 6.6
    wants = [
        max(len(h), *(len(r[i]) for r in rows[:200])) * char + 14 for i, h in enumerate(headers)
    ]
    total = sum(wants)
    if total > c.width:  # shrink the font (a little), then truncate
        scale = max(c.width / total, 0.8)
        size *= scale
        char *= scale
        wants = [w * scale for w in wants]
        total = sum(wants)
    widths = [w * c.width / total for w in wants]
    row_h = size * 1.75
    y = row_h / 2
    x = 0.0
    for h, w, num in zip(headers, widths, right, strict=True):
        label = _truncate(h, int((w - 10) / char))
        if num:
            c.text(x + w - 6, y, label, size, ha="right", color="#6e9fff", fontweight="bold")
        else:
            c.text(x + 6, y, label, size, color="#6e9fff", fontweight="bold")
        x += w
    c.rect(0, row_h - 1, c.width, 1, facecolor=BORDER)
    y += row_h
    fit = int((c.height - row_h) // row_h)
    shown = rows if len(rows) <= fit else rows[: max(fit - 1, 0)]
    for n, row in enumerate(shown):
        if n % 2:
            c.rect(0, y - row_h / 2, c.width, row_h, facecolor="#1f2227")
        x = 0.0
        for cell, w, num in zip(row, widths, right, strict=True):
            cell = _truncate(cell, int((w - 10) / char))
            if num:
                c.text(x + w - 6, y, cell, size, ha="right")
            else:
                c.text(x + 6, y, cell, size)
            x += w
        y += row_h
    if len(shown) < len(rows):
        c.text(6, y, f"… {len(rows) - len(shown)} more rows", size, color=MUTED)


def _draw_content(
    fig: Figure, box: tuple[float, float, float, float], panel: PanelData, data: DashboardData
) -> None:
    if panel.error:
        _draw_no_data(fig, box, f"Query failed: {panel.error}")
    elif not panel.has_data:
        _draw_no_data(fig, box, NO_DATA)
    elif panel.type == "timeseries":
        _draw_timeseries(fig, box, panel, data)
    elif panel.type == "barchart":
        _draw_barchart(fig, box, panel)
    elif panel.type == "gauge":
        _draw_gauge(fig, box, panel)
    elif panel.type == "table":
        _draw_table(fig, box, panel)
    else:
        _draw_stat(fig, box, panel)


def _panel_box(panel: PanelData, y0: float) -> tuple[float, float, float, float]:
    x, y, w, h = panel.grid
    col = (PAGE_WIDTH - GAP_PX) / 24
    return (
        GAP_PX + x * col,
        y0 + y * (ROW_PX + GAP_PX),
        w * col - GAP_PX,
        h * (ROW_PX + GAP_PX) - GAP_PX,
    )


HEADER_PX = 62
SEPARATOR_PX = 28


def _dashboard_height(data: DashboardData) -> float:
    return HEADER_PX + data.grid_rows * (ROW_PX + GAP_PX)


def _range_text(data: DashboardData) -> str:
    f = _utc_naive(data.time_from).strftime("%Y-%m-%d %H:%M")
    t = _utc_naive(data.time_to).strftime("%Y-%m-%d %H:%M")
    names = [v["name"] for v in data.dashboard.get("templating", {}).get("list", [])]
    variables = "  ·  ".join(f"{n}: All" for n in names)
    return f"{f} → {t} UTC" + (f"  ·  {variables}" if variables else "")


def _draw_dashboard(fig: Figure, data: DashboardData, y0: float) -> None:
    head = _Canvas(fig, (GAP_PX, y0, PAGE_WIDTH - 2 * GAP_PX, HEADER_PX - GAP_PX))
    head.text(4, 20, data.title, 20, fontweight="bold")
    head.text(4, 44, _range_text(data), 12, color=MUTED)
    for panel in data.panels:
        left, top, width, height = _panel_box(panel, y0 + HEADER_PX)
        frame = _Canvas(fig, (left, top, width, height))
        frame.rect(0, 0, width, height, facecolor=PANEL_BG, edgecolor=BORDER, linewidth=0.8)
        frame.text(10, 15, _truncate(panel.title, int((width - 20) / 7.2)), 13, fontweight="bold")
        _draw_content(fig, (left + 8, top + 30, width - 16, height - 36), panel, data)


def _new_figure(height_px: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(PAGE_WIDTH / DPI, height_px / DPI), dpi=DPI, facecolor=BG)


def _rc() -> Any:
    import matplotlib

    return matplotlib.rc_context(
        {
            "text.parse_math": False,
            "svg.fonttype": "none",
            "svg.hashsalt": "tokenpipe",
            "font.family": "DejaVu Sans",
        }
    )


def png_bytes(datas: Sequence[DashboardData]) -> bytes:
    """One PNG with ``datas`` one under another."""
    height = sum(_dashboard_height(d) for d in datas) + SEPARATOR_PX * (len(datas) - 1) + GAP_PX
    with _rc():
        fig = _new_figure(height)
        y = 0.0
        for d in datas:
            _draw_dashboard(fig, d, y)
            y += _dashboard_height(d) + SEPARATOR_PX
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, facecolor=BG, metadata={"Software": None})
    return buf.getvalue()


def _chart_svg(panel: PanelData, data: DashboardData, width: float, height: float) -> str:
    """A chart panel's content as an inline SVG (matplotlib, text as text)."""
    from matplotlib.figure import Figure

    with _rc():
        fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        fig.patch.set_alpha(0)
        _draw_content(fig, (0, 0, width, height), panel, data)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", dpi=DPI, transparent=True, metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", svg, count=1)
    return svg.replace("<svg", '<svg class="chart" preserveAspectRatio="xMidYMid meet"', 1)


# --- HTML -------------------------------------------------------------------------------

_CSS = f"""
* {{ box-sizing: border-box; }}
body {{ margin: 0; padding: 16px; background: {BG}; color: {TEXT};
  font-family: Inter, "Helvetica Neue", Arial, sans-serif; font-size: 13px; }}
.dashboard {{ max-width: {PAGE_WIDTH}px; margin: 0 auto 40px; }}
.dashboard h1 {{ font-size: 20px; margin: 0 0 4px; }}
.range {{ color: {MUTED}; margin: 0 0 12px; }}
.grid {{ display: grid; grid-template-columns: repeat(24, minmax(0, 1fr));
  grid-auto-rows: {ROW_PX}px; gap: {GAP_PX}px; }}
.panel {{ background: {PANEL_BG}; border: 1px solid {BORDER}; border-radius: 2px;
  display: flex; flex-direction: column; min-width: 0; min-height: 0; }}
.panel h2 {{ font-size: 13px; font-weight: 600; margin: 0; padding: 7px 10px 4px;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.body {{ flex: 1; min-height: 0; padding: 2px 8px 6px; position: relative; }}
.chart {{ width: 100%; height: 100%; display: block; }}
.stat {{ height: 100%; display: flex; align-items: center; justify-content: center;
  font-weight: 700; white-space: nowrap; }}
.gauge {{ height: 100%; width: 100%; display: block; }}
.nodata {{ height: 100%; display: flex; align-items: center; justify-content: center;
  color: {MUTED}; font-size: 15px; }}
.error {{ color: {COLORS["red"]}; padding: 8px; overflow: auto; height: 100%; }}
.table {{ height: 100%; overflow: auto; }}
table {{ border-collapse: collapse; width: 100%; font-size: 12px; }}
th {{ position: sticky; top: 0; background: {PANEL_BG}; color: #6e9fff; text-align: left;
  padding: 4px 6px; border-bottom: 1px solid {BORDER}; white-space: nowrap; }}
td {{ padding: 3px 6px; border-bottom: 1px solid #22252b; white-space: nowrap; }}
tr:nth-child(even) td {{ background: #1f2227; }}
.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
details.queries {{ margin-top: 10px; color: {MUTED}; }}
details.queries pre {{ white-space: pre-wrap; background: {PANEL_BG}; padding: 8px;
  border: 1px solid {BORDER}; font-size: 11px; }}
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_stat(panel: PanelData, height: float) -> str:
    value = single_value(panel)
    if value is None:
        return f'<div class="nodata">{NO_DATA}</div>'
    text = format_value(value, panel.unit, panel.decimals)
    width = _panel_box(panel, 0)[2] - 16
    size = _fit_font(text, width * 0.9, height)
    color = threshold_color(panel, value)
    return (
        f'<div class="stat" data-value="{value!r}" style="color:{color};font-size:{size:.0f}px">'
        f"{_esc(text)}</div>"
    )


def _arc(cx: float, cy: float, r: float, a0: float, a1: float) -> str:
    """SVG path of a circle arc from angle ``a0`` to ``a1`` (degrees, counter-clockwise)."""
    x0, y0 = cx + r * math.cos(math.radians(a0)), cy - r * math.sin(math.radians(a0))
    x1, y1 = cx + r * math.cos(math.radians(a1)), cy - r * math.sin(math.radians(a1))
    large = 1 if abs(a1 - a0) > 180 else 0
    sweep = 0 if a1 > a0 else 1
    return f"M{x0:.1f},{y0:.1f} A{r:.1f},{r:.1f} 0 {large} {sweep} {x1:.1f},{y1:.1f}"


def _html_gauge(panel: PanelData, width: float, height: float) -> str:
    value = single_value(panel)
    if value is None:
        return f'<div class="nodata">{NO_DATA}</div>'
    lo, hi = _gauge_range(panel)
    frac = min(max((value - lo) / (hi - lo), 0.0), 1.0) if hi > lo else 0.0
    color = threshold_color(panel, value)
    r, cx, cy = _gauge_geometry(width, height)
    ring = r * 0.2
    mid = r * 0.9 - ring / 2
    end = GAUGE_START - GAUGE_SWEEP * frac
    parts = [
        f'<path d="{_arc(cx, cy, mid, GAUGE_START, GAUGE_START - GAUGE_SWEEP)}" '
        f'stroke="{BORDER}" stroke-width="{ring:.1f}" fill="none"/>'
    ]
    if frac > 0:
        parts.append(
            f'<path d="{_arc(cx, cy, mid, GAUGE_START, end)}" stroke="{color}" '
            f'stroke-width="{ring:.1f}" fill="none"/>'
        )
    for f0, f1, band in _threshold_bands(panel, lo, hi):
        a0, a1 = GAUGE_START - GAUGE_SWEEP * f0, GAUGE_START - GAUGE_SWEEP * f1
        parts.append(
            f'<path d="{_arc(cx, cy, r * 0.97, a0, a1)}" stroke="{band}" '
            f'stroke-width="{r * 0.06:.1f}" fill="none"/>'
        )
    text = format_value(value, panel.unit, panel.decimals)
    size = _fit_font(text, r * 0.95, r * 0.8, 38)
    parts.append(
        f'<text x="{cx:.1f}" y="{cy:.1f}" fill="{color}" font-size="{size:.0f}" '
        f'font-weight="700" text-anchor="middle" dominant-baseline="central">{_esc(text)}</text>'
    )
    return (
        f'<svg class="gauge" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'data-value="{value!r}" xmlns="http://www.w3.org/2000/svg">' + "".join(parts) + "</svg>"
    )


def _html_table(panel: PanelData) -> str:
    headers, rows, right = table_cells(panel)
    if not rows:
        return f'<div class="nodata">{NO_DATA}</div>'
    head = "".join(
        f'<th class="num">{_esc(h)}</th>' if num else f"<th>{_esc(h)}</th>"
        for h, num in zip(headers, right, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_esc(c)}</td>' if num else f"<td>{_esc(c)}</td>"
            for c, num in zip(row, right, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="table"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _html_panel(panel: PanelData, data: DashboardData) -> str:
    x, y, w, h = panel.grid
    _, _, width, height = _panel_box(panel, 0)
    body_w, body_h = width - 16, height - 38
    if panel.error:
        content = f'<div class="error">Query failed: {_esc(panel.error)}</div>'
    elif not panel.has_data:
        content = f'<div class="nodata">{NO_DATA}</div>'
    elif panel.type in ("timeseries", "barchart"):
        content = _chart_svg(panel, data, body_w, body_h)
    elif panel.type == "gauge":
        content = _html_gauge(panel, body_w, body_h)
    elif panel.type == "table":
        content = _html_table(panel)
    else:
        content = _html_stat(panel, body_h)
    description = panel.panel.get("description") or ""
    return (
        f'<div class="panel panel-{_esc(panel.type)}" data-panel-id="{_esc(panel.panel.get("id"))}"'
        f' style="grid-column:{x + 1} / span {w};grid-row:{y + 1} / span {h}"'
        f' title="{_esc(description)}"><h2>{_esc(panel.title)}</h2>'
        f'<div class="body">{content}</div></div>'
    )


def _html_dashboard(data: DashboardData) -> str:
    panels = "".join(_html_panel(p, data) for p in data.panels)
    queries = "".join(
        f"<h3>{_esc(p.title)}</h3><pre>{_esc(p.sql)}</pre>" for p in data.panels if p.sql
    )
    return (
        f'<section class="dashboard" id="{_esc(data.uid)}"><h1>{_esc(data.title)}</h1>'
        f'<p class="range">{_esc(_range_text(data))}</p>'
        f'<div class="grid">{panels}</div>'
        f'<details class="queries"><summary>Queries (expanded SQL)</summary>{queries}</details>'
        "</section>"
    )


def html_page(datas: Sequence[DashboardData], title: str | None = None) -> str:
    """One self-contained HTML page with ``datas`` one under another."""
    title = title or (datas[0].title if len(datas) == 1 else "tokenpipe dashboards")
    body = "".join(_html_dashboard(d) for d in datas)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>\n"
    )


# --- public API -------------------------------------------------------------------------


def render_html(
    store: Store,
    dashboard: Mapping[str, Any],
    time_from: datetime,
    time_to: datetime,
    *,
    strict: bool = False,
) -> str:
    """``dashboard`` (JSON) as a self-contained HTML page."""
    return html_page([collect(store, dashboard, time_from, time_to, strict=strict)])


def render_png(
    store: Store,
    dashboard: Mapping[str, Any],
    time_from: datetime,
    time_to: datetime,
    path: str | Path,
    *,
    strict: bool = False,
) -> Path:
    """``dashboard`` (JSON) as a PNG at ``path``."""
    out = Path(path)
    data = collect(store, dashboard, time_from, time_to, strict=strict)
    out.write_bytes(png_bytes([data]))
    return out


def _fmt_of(path: Path, fmt: str | None) -> str:
    fmt = (fmt or path.suffix.lstrip(".") or "html").lower()
    if fmt not in ("html", "png"):
        raise ValueError(f"format must be html or png, not {fmt!r}")
    return fmt


def render_all(
    store: Store,
    out_dir: str | Path,
    fmt: str = "png",
    *,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    strict: bool = False,
) -> list[Path]:
    """``<out_dir>/<uid>.<fmt>`` for every catalog dashboard; the paths written."""
    fmt = _fmt_of(Path(f"x.{fmt}"), fmt)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for dashboard in load_dashboards():
        start, end = _range(dashboard, time_from, time_to)
        path = folder / f"{dashboard['uid']}.{fmt}"
        if fmt == "png":
            render_png(store, dashboard, start, end, path, strict=strict)
        else:
            path.write_text(
                render_html(store, dashboard, start, end, strict=strict), encoding="utf-8"
            )
        written.append(path)
    return written


def _range(
    dashboard: Mapping[str, Any], time_from: datetime | None, time_to: datetime | None
) -> tuple[datetime, datetime]:
    start, end = default_range(dashboard, time_to)
    if time_to is not None:
        end = time_to
    return (time_from or start), end


def render_report(
    store: Store,
    path: str | Path,
    fmt: str | None = None,
    dashboards: Sequence[str] | None = None,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    *,
    strict: bool = False,
) -> Path:
    """``tokenpipe report --html/--png FILE``: the dashboards (default all) in ONE file.

    ``fmt`` is ``"html"`` or ``"png"`` (default: from the suffix of ``path``). The
    dashboards are stacked one under another in catalog order (or the order of
    ``dashboards``, uids). Without a range each dashboard uses its default
    (``now-7d`` .. now); ``time_to`` alone keeps the default length.
    """
    out = Path(path)
    kind = _fmt_of(out, fmt)
    datas = []
    for dashboard in load_dashboards(dashboards):
        start, end = _range(dashboard, time_from, time_to)
        datas.append(collect(store, dashboard, start, end, strict=strict))
    if out.parent:
        out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "png":
        out.write_bytes(png_bytes(datas))
    else:
        out.write_text(html_page(datas), encoding="utf-8")
    return out
