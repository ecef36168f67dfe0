"""Run a generated dashboard's queries against a store, as Grafana would.

Reads the dashboard JSON (what Grafana loads), resolves the template variables by
running their queries in order (each with the selections made so far, like
Grafana's chained variables), then expands each panel target's SQL with
``dashboards.macros`` and executes it. Used by the tests (every query must run),
the benchmark and the renderer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dashboards.macros import ALL, QueryContext, Selection, expand, grafana_interval
from pipeline.store import Store


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel, as stored in the dashboard JSON."""

    dashboard_uid: str
    panel_id: int
    panel_title: str
    panel_type: str
    ref_id: str
    raw_sql: str
    format: int
    min_interval: str | None
    panel: Mapping[str, Any]


@dataclass(frozen=True)
class Result:
    """Columns (name, ClickHouse type) and rows of an executed query."""

    sql: str
    columns: list[tuple[str, str]]
    rows: list[tuple]

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.columns]


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, including panels nested in collapsed rows; rows themselves excluded."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every panel target of ``dashboard``."""
    out = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            out.append(
                PanelQuery(
                    dashboard_uid=dashboard["uid"],
                    panel_id=panel["id"],
                    panel_title=panel.get("title", ""),
                    panel_type=panel["type"],
                    ref_id=target.get("refId", "A"),
                    raw_sql=target["rawSql"],
                    format=target.get("format", 1),
                    min_interval=panel.get("interval"),
                    panel=panel,
                )
            )
    return out


def variables(dashboard: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(dashboard.get("templating", {}).get("list", []))


def run_sql(store: Store, sql: str) -> Result:
    result = store.client.query(sql)
    columns = [(n, t.name) for n, t in zip(result.column_names, result.column_types, strict=True)]
    return Result(sql=sql, columns=columns, rows=[tuple(r) for r in result.result_rows])


def resolve_variables(
    store: Store,
    dashboard: Mapping[str, Any],
    time_from: datetime,
    time_to: datetime,
    selections: Mapping[str, Selection] | None = None,
) -> tuple[dict[str, Selection], dict[str, list[str]]]:
    """Run each query variable in order; return (selections, options per variable).

    A variable not in ``selections`` is "All". Options of later variables see the
    selections of earlier ones (chained variables).
    """
    chosen: dict[str, Selection] = {}
    options: dict[str, list[str]] = {}
    wanted = dict(selections or {})
    for var in variables(dashboard):
        if var.get("type") != "query":
            continue
        name = var["name"]
        ctx = QueryContext(time_from, time_to, timedelta(hours=1), chosen, options)
        res = run_sql(store, expand(str(var["query"]), ctx))
        options[name] = [str(r[0]) for r in res.rows]
        chosen[name] = wanted.get(name, ALL)
    return chosen, options


def context_for(
    query: PanelQuery,
    time_from: datetime,
    time_to: datetime,
    selections: Mapping[str, Selection],
    options: Mapping[str, Sequence[str]],
) -> QueryContext:
    interval = grafana_interval(time_from, time_to, min_interval=query.min_interval)
    return QueryContext(time_from, time_to, interval, selections, options)


def run_panel_query(
    store: Store,
    query: PanelQuery,
    time_from: datetime,
    time_to: datetime,
    selections: Mapping[str, Selection],
    options: Mapping[str, Sequence[str]],
) -> Result:
    """Expand ``query`` for the range and selections and run it."""
    ctx = context_for(query, time_from, time_to, selections, options)
    return run_sql(store, expand(query.raw_sql, ctx))
