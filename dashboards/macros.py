"""Expand panel SQL as Grafana and the ClickHouse plugin (v4) do, to run it without Grafana.

Three passes, in the order a query goes through Grafana:

1. ``$__conditionalAll(condition, $var)`` — the plugin's frontend
   (``CHDatasource.applyConditionalAll``): scanning from the LAST occurrence
   backwards, the macro becomes ``1=1`` when the variable's current value is "All"
   (``$__all``) or empty, else ``condition`` unchanged. Arguments are split at
   commas at parenthesis depth 1, as the plugin's ``getMacroArgs`` does.
2. Template variables — Grafana's ``templateSrv.replace`` with the plugin's
   formatter: ``$var``, ``${var}`` and ``[[var]]``. A multi-value selection (a list)
   becomes ``'a','b'`` (joined with ``','`` inside single quotes, no escaping — the
   plugin does not escape either); a single value is inserted raw. "All" without a
   custom all-value is the list of every option. Grafana's globals ``$__from``,
   ``$__to`` (epoch ms), ``$__interval`` and ``$__interval_ms`` are replaced here too.
   Unknown ``$names`` are left alone, as Grafana does.
3. Backend macros — ``pkg/macros/macros.go`` of the plugin, through sqlds:
   ``$__timeFilter(c)`` → ``c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)``,
   ``$__timeFilter_ms(c)`` with ``fromUnixTimestamp64Milli(<ms>)``,
   ``$__dateFilter(c)`` with ``toDate('YYYY-MM-DD')``, ``$__dateTimeFilter(d, t)`` /
   ``$__dt``, ``$__fromTime``/``$__toTime`` (``toDateTime(<s>)``),
   ``$__fromTime_ms``/``$__toTime_ms``, ``$__timeInterval(c)`` →
   ``toStartOfInterval(toDateTime(c), INTERVAL <s> second)`` (at least 1 s),
   ``$__timeInterval_ms(c)`` and ``$__interval_s``. A ``$__name`` left after this
   pass is an error (ClickHouse would reject it anyway; we say which).

``grafana_interval`` approximates how Grafana picks ``$__interval`` for a panel:
range / max data points, rounded to a "nice" step, never below the panel's min
interval.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

ALL = "$__all"
"""The value Grafana stores for a variable whose "All" option is selected."""

Selection = str | Sequence[str]
"""A variable's current value: ``ALL``, one raw string, or a list of values."""


class MacroError(ValueError):
    """A macro that cannot be expanded (bad arguments, unknown name)."""


@dataclass(frozen=True)
class QueryContext:
    """What Grafana knows when it runs a panel query."""

    time_from: datetime
    time_to: datetime
    interval: timedelta = timedelta(hours=1)
    selections: Mapping[str, Selection] = field(default_factory=dict)
    """Current value per variable: ``ALL``, a list of values, or one raw string."""
    options: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Every option per variable (what "All" stands for)."""


# --- pass 1: $__conditionalAll ----------------------------------------------------------

_CONDITIONAL_ALL = "$__conditionalAll("
_VAR_IN_ARG = re.compile(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+")


def _macro_args(sql: str, open_paren: int) -> list[str] | None:
    """Arguments of the call whose ``(`` is at ``open_paren``: split at depth-1 commas."""
    depth = 0
    args: list[str] = []
    start = open_paren + 1
    for i in range(open_paren, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return args
        elif ch == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
    return None


def _current_as_text(value: Selection | None) -> str:
    """JavaScript's ``current.value.toString()``: lists join with ','."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return ",".join(value)


def apply_conditional_all(sql: str, selections: Mapping[str, Selection]) -> str:
    """Pass 1 (plugin frontend): resolve every ``$__conditionalAll(condition, $var)``."""
    idx = sql.rfind(_CONDITIONAL_ALL)
    while idx != -1:
        args = _macro_args(sql, idx + len(_CONDITIONAL_ALL) - 1)
        if args is None or len(args) != 2:
            return sql  # the plugin gives up and leaves the text as is
        condition, var_arg = args
        phrase = condition
        found = _VAR_IN_ARG.search(var_arg.strip())
        if found:
            current = _current_as_text(selections.get(found.group(0)))
            if current in ("", ALL):
                phrase = "1=1"
        sql = sql.replace(f"{_CONDITIONAL_ALL}{condition},{var_arg})", phrase, 1)
        idx = sql.rfind(_CONDITIONAL_ALL)
    return sql


# --- pass 2: template variables ---------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(?P<plain>\w+)"
    r"|\[\[(?P<bracket>\w+?)(?::\w+)?\]\]"
    r"|\$\{(?P<braced>\w+)(?::(?P<fmt>[^}]+))?\}"
)


def _format_value(value: Selection) -> str:
    """The plugin's formatter: lists as ``'a','b'``, single values raw."""
    if isinstance(value, str):
        return value
    return "'" + "','".join(value) + "'"


def _interval_text(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    if seconds >= 1:
        return f"{seconds}s"
    return f"{int(interval.total_seconds() * 1000)}ms"


def replace_variables(sql: str, ctx: QueryContext) -> str:
    """Pass 2 (Grafana templateSrv + the plugin's formatter)."""
    globals_: dict[str, str] = {
        "__from": str(_ms(ctx.time_from)),
        "__to": str(_ms(ctx.time_to)),
        "__interval": _interval_text(ctx.interval),
        "__interval_ms": str(int(ctx.interval.total_seconds() * 1000)),
    }

    def sub(m: re.Match[str]) -> str:
        name = m.group("plain") or m.group("bracket") or m.group("braced")
        if name in globals_:
            return globals_[name]
        if name not in ctx.selections:
            return m.group(0)  # not a variable: left for the backend (macros) or as text
        if m.group("fmt"):
            raise MacroError(f"variable format ${{{name}:{m.group('fmt')}}} is not supported here")
        value = ctx.selections[name]
        if value == ALL or (not isinstance(value, str) and list(value) == [ALL]):
            value = list(ctx.options.get(name, ()))
        return _format_value(value)

    return _VARIABLE.sub(sub, sql)


# --- pass 3: backend macros -------------------------------------------------------------


def _seconds(t: datetime) -> int:
    return int(t.timestamp())


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _datetime(t: datetime) -> str:
    return f"toDateTime({_seconds(t)})"


def _datetime64(t: datetime) -> str:
    return f"fromUnixTimestamp64Milli({_ms(t)})"


def _date(t: datetime) -> str:
    return f"toDate('{t.astimezone(UTC):%Y-%m-%d}')"


def _one(name: str, args: list[str]) -> str:
    if len(args) != 1:
        raise MacroError(f"$__{name}: expected 1 argument, received {len(args)}")
    return args[0]


def _interval_seconds(ctx: QueryContext) -> int:
    return max(int(ctx.interval.total_seconds()), 1)


def _range_filter(col: str, fmt: Callable[[datetime], str], ctx: QueryContext) -> str:
    return f"{col} >= {fmt(ctx.time_from)} AND {col} <= {fmt(ctx.time_to)}"


def _date_time_filter(name: str, args: list[str], ctx: QueryContext) -> str:
    if len(args) != 2:
        raise MacroError(f"$__{name}: expected 2 arguments, received {len(args)}")
    date_col, time_col = args
    return (
        f"({_range_filter(date_col, _date, ctx)}) AND ({_range_filter(time_col, _datetime, ctx)})"
    )


_Macro = Callable[[str, list[str], QueryContext], str]

MACROS: dict[str, _Macro] = {
    "fromTime": lambda n, a, c: _datetime(c.time_from),
    "toTime": lambda n, a, c: _datetime(c.time_to),
    "fromTime_ms": lambda n, a, c: _datetime64(c.time_from),
    "toTime_ms": lambda n, a, c: _datetime64(c.time_to),
    "timeFilter": lambda n, a, c: _range_filter(_one(n, a), _datetime, c),
    "timeFilter_ms": lambda n, a, c: _range_filter(_one(n, a), _datetime64, c),
    "dateFilter": lambda n, a, c: _range_filter(_one(n, a), _date, c),
    "dateTimeFilter": _date_time_filter,
    "dt": _date_time_filter,
    "timeInterval": lambda n, a, c: (
        f"toStartOfInterval(toDateTime({_one(n, a)}), INTERVAL {_interval_seconds(c)} second)"
    ),
    "timeInterval_ms": lambda n, a, c: (
        f"toStartOfInterval(toDateTime64({_one(n, a)}, 3), INTERVAL "
        f"{max(int(c.interval.total_seconds() * 1000), 1)} millisecond)"
    ),
    "interval_s": lambda n, a, c: str(_interval_seconds(c)),
}

_MACRO_NAME = re.compile(r"\$__(\w+)")


def apply_macros(sql: str, ctx: QueryContext) -> str:
    """Pass 3 (plugin backend): expand ``$__name`` / ``$__name(args)``; unknown names raise."""
    out: list[str] = []
    pos = 0
    while True:
        m = _MACRO_NAME.search(sql, pos)
        if m is None:
            out.append(sql[pos:])
            return "".join(out)
        name = m.group(1)
        if name not in MACROS:
            raise MacroError(f"unknown macro $__{name}")
        out.append(sql[pos : m.start()])
        end = m.end()
        args: list[str] = []
        if end < len(sql) and sql[end] == "(":
            raw = _macro_args(sql, end)
            if raw is None:
                raise MacroError(f"$__{name}: unbalanced parentheses")
            args = [a.strip() for a in raw]
            if args == [""]:
                args = []
            end += sum(len(a) for a in raw) + len(raw) + 1  # args, separators and parens
        out.append(MACROS[name](name, args, ctx))
        pos = end


def expand(sql: str, ctx: QueryContext) -> str:
    """All three passes: the SQL ClickHouse would receive from Grafana."""
    return apply_macros(replace_variables(apply_conditional_all(sql, ctx.selections), ctx), ctx)


# --- Grafana's interval -----------------------------------------------------------------

_NICE_STEPS = [
    timedelta(seconds=s)
    for s in (
        1,
        5,
        10,
        15,
        30,
        60,
        300,
        600,
        900,
        1800,
        3600,
        7200,
        10800,
        21600,
        43200,
        86400,
        7 * 86400,
        30 * 86400,
    )
]

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``"1h"``, ``"30s"``, ``"1d"`` ... as a timedelta."""
    m = _DURATION.match(text.strip())
    if not m:
        raise MacroError(f"bad duration {text!r}")
    return timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)])


def grafana_interval(
    time_from: datetime,
    time_to: datetime,
    *,
    max_data_points: int = 1000,
    min_interval: str | None = None,
) -> timedelta:
    """The ``$__interval`` Grafana would use (approximation: range / points, nice step, min)."""
    raw = (time_to - time_from) / max(max_data_points, 1)
    step = next((s for s in _NICE_STEPS if s >= raw), _NICE_STEPS[-1])
    if min_interval:
        step = max(step, parse_duration(min_interval))
    return step
