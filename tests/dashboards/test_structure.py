"""Structural checks of the generated dashboards (our own rules, not a copied schema)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dashboards.constants import DATASOURCE_TYPE, DATASOURCE_UID
from dashboards.execute import iter_panels, panel_queries
from dashboards.macros import MACROS
from dashboards.panels import UNIT_RATIO, UNIT_SHARE, UNIT_USD, VARIABLES
from dashboards.query import FORMAT_TABLE, FORMAT_TIME_SERIES
from tests.dashboards.conftest import load_dashboards

DASHBOARDS = load_dashboards()
IDS = list(DASHBOARDS)

#: Names after ``$`` that are not dashboard variables: plugin/backend macros,
#: Grafana globals, and field-display templates (``${__field.labels.x}``).
BUILTINS = {f"__{m}" for m in MACROS} | {
    "__conditionalAll",
    "__from",
    "__to",
    "__interval",
    "__interval_ms",
    "__all",
    "__field",
}
_REF = re.compile(r"\$\{([A-Za-z_]\w*)(?:[.:][^}]*)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)")


def _refs(text: str) -> set[str]:
    return {a or b or c for a, b, c in _REF.findall(text)}


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


@pytest.fixture(params=IDS)
def dash(request: pytest.FixtureRequest) -> dict[str, Any]:
    return DASHBOARDS[request.param]


def test_all_dashboards_present() -> None:
    assert set(IDS) == {
        "tokenpipe-overview",
        "tokenpipe-models",
        "tokenpipe-users",
        "tokenpipe-forecast",
        "tokenpipe-optimization",
        "tokenpipe-budgets",
        "tokenpipe-anomalies",
    }


def test_panel_ids_unique(dash: dict[str, Any]) -> None:
    ids = [p["id"] for p in dash["panels"]]
    ids += [c["id"] for p in dash["panels"] for c in p.get("panels", [])]
    assert len(ids) == len(set(ids)), ids


def test_grid_within_24_columns_without_overlaps(dash: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dash["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] >= 1 and g["h"] >= 1, panel["title"]
        assert g["x"] + g["w"] <= 24, f"{panel['title']} overflows the grid: {g}"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                other = cells.setdefault((x, y), panel["title"])
                assert other == panel["title"], f"{panel['title']} overlaps {other} at {(x, y)}"


def test_every_variable_used_is_defined(dash: dict[str, Any]) -> None:
    defined = {v["name"] for v in dash["templating"]["list"]}
    used = set()
    for text in _strings(dash["panels"]) + _strings(dash["templating"]):
        used |= _refs(text)
    undefined = {u for u in used if u not in defined and u not in BUILTINS}
    assert not undefined, undefined


def test_the_usage_variables_are_multi_value_with_all(dash: dict[str, Any]) -> None:
    by_name = {v["name"]: v for v in dash["templating"]["list"]}
    assert list(by_name) == list(VARIABLES)
    for var in by_name.values():
        assert var["type"] == "query" and var["multi"] is True and var["includeAll"] is True
        assert var["current"]["value"] == ["$__all"]


def test_every_panel_target_and_variable_uses_the_provisioned_datasource(
    dash: dict[str, Any],
) -> None:
    ref = {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
    for panel in iter_panels(dash):
        assert panel["datasource"] == ref, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == ref, panel["title"]
    for var in dash["templating"]["list"]:
        assert var["datasource"] == ref, var["name"]


def test_targets_are_plugin_v4_sql_queries(dash: dict[str, Any]) -> None:
    for q in panel_queries(dash):
        target = next(t for t in q.panel["targets"] if t["refId"] == q.ref_id)
        assert target["editorType"] == "sql"
        assert target["rawSql"].strip()
        if q.panel_type == "timeseries":
            assert (target["format"], target["queryType"]) == (FORMAT_TIME_SERIES, "timeSeries"), (
                q.panel_title
            )
            assert "$__timeInterval" in q.raw_sql or "AS time" in q.raw_sql, q.panel_title
        else:
            assert (target["format"], target["queryType"]) == (FORMAT_TABLE, "table"), q.panel_title
        refs = [t["refId"] for t in q.panel["targets"]]
        assert len(refs) == len(set(refs))


def _money_or_ratio_aliases(sql: str) -> set[str]:
    return {a for a in re.findall(r"\bAS (\w+)", sql) if a.endswith(("_usd", "_share", "_ratio"))}


def test_money_and_ratio_panels_have_units_and_thresholds(dash: dict[str, Any]) -> None:
    """A panel whose query yields *_usd / *_share / *_ratio columns must say so in units."""
    for q in panel_queries(dash):
        defaults = q.panel["fieldConfig"]["defaults"]
        aliases = _money_or_ratio_aliases(q.raw_sql)
        if not aliases:
            continue
        assert defaults.get("thresholds", {}).get("steps"), f"{q.panel_title}: no thresholds"
        overrides = {
            o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
            for o in q.panel["fieldConfig"].get("overrides", [])
            if o["matcher"]["id"] == "byName"
        }
        if q.panel_type == "table":  # every money/ratio column shown gets a unit override
            for col, props in overrides.items():
                if col.endswith("_usd"):
                    assert props["unit"] == UNIT_USD, (q.panel_title, col)
                elif col.endswith("_share"):
                    assert props["unit"] == UNIT_SHARE, (q.panel_title, col)
                elif col.endswith("_ratio"):
                    assert props["unit"] == UNIT_RATIO, (q.panel_title, col)
        else:
            unit = defaults.get("unit")
            assert unit in (UNIT_USD, UNIT_SHARE, UNIT_RATIO), f"{q.panel_title}: unit {unit}"


def test_money_stats_use_currency_and_ratio_stats_use_percentunit(dash: dict[str, Any]) -> None:
    for panel in iter_panels(dash):
        if panel["type"] not in ("stat", "gauge"):
            continue
        sql = panel["targets"][0]["rawSql"]
        outer = re.findall(r"\bAS (\w+)", sql)
        assert outer, panel["title"]
        unit = panel["fieldConfig"]["defaults"]["unit"]
        final = re.match(r"(?s).*\bSELECT\b(?!.*\bSELECT\b)(.*)", sql)
        assert final is not None
        last_aliases = re.findall(r"\bAS (\w+)", final.group(1))
        name = last_aliases[0] if last_aliases else outer[-1]
        if name.endswith("_usd"):
            assert unit == UNIT_USD, panel["title"]
        elif name.endswith("_share"):
            assert unit == UNIT_SHARE, panel["title"]
        assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"], panel["title"]
