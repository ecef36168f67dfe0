"""The offline renderer: every panel drawn from its own SQL, as HTML and PNG."""

from __future__ import annotations

import html
import re
import struct
from datetime import timedelta
from pathlib import Path

import pytest

from dashboards import render
from dashboards.execute import iter_panels, panel_queries, resolve_variables, run_panel_query
from pipeline.store import Store
from tests.dashboards.conftest import Demo, load_dashboards

DASHBOARDS = load_dashboards()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _range(demo: Demo) -> tuple:
    return demo.time_to - timedelta(days=7), demo.time_to


@pytest.fixture(scope="module")
def report_html(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> str:
    start, end = _range(demo)
    path = tmp_path_factory.mktemp("render") / "report.html"
    out = render.render_report(demo.store, path, time_from=start, time_to=end, strict=True)
    assert out == path
    return path.read_text(encoding="utf-8")


def test_catalog_dashboards_are_the_checked_in_ones() -> None:
    assert {d["uid"] for d in render.load_dashboards()} == set(DASHBOARDS)


def test_html_has_every_dashboard_and_panel_title(report_html: str) -> None:
    assert report_html.startswith("<!DOCTYPE html>")
    for uid, dashboard in DASHBOARDS.items():
        assert f'id="{uid}"' in report_html
        assert html.escape(dashboard["title"]) in report_html
        for panel in iter_panels(dashboard):
            assert f"<h2>{html.escape(panel['title'])}</h2>" in report_html, panel["title"]
    panels = sum(len(list(iter_panels(d))) for d in DASHBOARDS.values())
    assert report_html.count('<div class="panel ') == panels


def test_html_has_no_unexpanded_macros_or_variables(report_html: str) -> None:
    assert "$__" not in report_html
    assert re.search(r"\$\{?[A-Za-z_]", report_html) is None
    assert "[[" not in report_html


def test_html_is_self_contained_and_has_data(report_html: str) -> None:
    assert "<script" not in report_html
    assert re.search(r"""(src|href)=["']?https?:""", report_html) is None
    assert "Query failed" not in report_html
    assert render.NO_DATA not in report_html  # the demo data fills every panel
    assert report_html.count('<svg class="chart"') == sum(
        p["type"] in ("timeseries", "barchart") for d in DASHBOARDS.values() for p in iter_panels(d)
    )
    assert "<table>" in report_html
    assert "toDateTime(" in report_html  # the expanded SQL is listed


def test_stat_shows_the_panel_sql_result_with_its_unit(demo: Demo) -> None:
    start, end = _range(demo)
    dashboard = DASHBOARDS["tokenpipe-overview"]
    page = render.render_html(demo.store, dashboard, start, end, strict=True)
    selections, options = resolve_variables(demo.store, dashboard, start, end)
    queries = {q.panel_title: q for q in panel_queries(dashboard)}
    cost = run_panel_query(demo.store, queries["Cost"], start, end, selections, options)
    expected = f"${cost.rows[0][0]:,.2f}"
    assert re.fullmatch(r"\$[\d,]+\.\d\d", expected)
    assert f">{expected}</div>" in page
    errors = run_panel_query(demo.store, queries["Error rate"], start, end, selections, options)
    assert f">{errors.rows[0][0] * 100:.2f}%</div>" in page
    assert re.search(r">\d+(\.\d+)?[KM]</div>", page)  # calls/tokens as short


@pytest.mark.parametrize(
    ("value", "unit", "decimals", "text"),
    [
        (1234.5612, "currencyUSD", None, "$1,234.56"),
        (1234.5612, "currencyUSD", 4, "$1,234.5612"),
        (0.00801234, "currencyUSD", None, "$0.00801"),
        (-2.5, "currencyUSD", 2, "-$2.50"),
        (0.1234, "percentunit", None, "12.3%"),
        (0.006064, "percentunit", 2, "0.61%"),
        (0.0, "percentunit", None, "0.0%"),
        (1_234_567, "short", None, "1.23M"),
        (1_200_000, "short", None, "1.2M"),
        (12037, "short", None, "12K"),
        (65_482_668, "short", None, "65.5M"),
        (742, "short", None, "742"),
        (8.2976, "short", None, "8.3"),
        (0.123456, "short", None, "0.123"),
        (115.637, "suffix:x", None, "115.6x"),
        ("acme", "short", None, "acme"),
        (None, "currencyUSD", None, ""),
    ],
)
def test_format_value(value: object, unit: str, decimals: int | None, text: str) -> None:
    assert render.format_value(value, unit, decimals) == text


def test_png_is_a_valid_image_of_sane_size(demo: Demo, tmp_path: Path) -> None:
    start, end = _range(demo)
    dashboard = DASHBOARDS["tokenpipe-models"]
    path = render.render_png(demo.store, dashboard, start, end, tmp_path / "m.png", strict=True)
    data = path.read_bytes()
    width, height = _png_size(data)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in iter_panels(dashboard))
    assert width == render.PAGE_WIDTH
    assert rows * (render.ROW_PX + render.GAP_PX) < height < (rows + 4) * 40
    assert 20_000 < len(data) < 600_000


def test_png_report_stacks_the_chosen_dashboards(demo: Demo, tmp_path: Path) -> None:
    start, end = _range(demo)
    uids = ["tokenpipe-overview", "tokenpipe-forecast"]
    path = render.render_report(demo.store, tmp_path / "r.png", None, uids, start, end)
    width, height = _png_size(path.read_bytes())
    single = render.render_report(demo.store, tmp_path / "o.png", "png", uids[:1], start, end)
    assert width == render.PAGE_WIDTH
    assert height > _png_size(single.read_bytes())[1] + 400


def test_unknown_dashboard_and_format_are_errors(demo: Demo, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dashboard"):
        render.render_report(demo.store, tmp_path / "x.html", dashboards=["nope"])
    with pytest.raises(ValueError, match="format"):
        render.render_report(demo.store, tmp_path / "x.pdf")


def test_empty_database_gives_no_data_panels(store: Store, tmp_path: Path) -> None:
    end = render.default_range()[1]
    start = end - timedelta(days=7)
    page = render.render_report(
        store, tmp_path / "empty.html", time_from=start, time_to=end, strict=True
    ).read_text(encoding="utf-8")
    assert "Query failed" not in page
    for dashboard in DASHBOARDS.values():
        for panel in iter_panels(dashboard):
            assert f"<h2>{html.escape(panel['title'])}</h2>" in page
    # every chart and table is "No data"; sums over nothing may still be a 0 stat
    charts_and_tables = sum(
        p["type"] in ("timeseries", "barchart", "table")
        for d in DASHBOARDS.values()
        for p in iter_panels(d)
    )
    assert page.count(render.NO_DATA) >= charts_and_tables
    png = render.render_report(store, tmp_path / "empty.png", time_from=start, time_to=end)
    assert _png_size(png.read_bytes())[0] == render.PAGE_WIDTH


def test_missing_tables_show_the_error_in_the_panel(empty_store: Store, tmp_path: Path) -> None:
    dashboard = DASHBOARDS["tokenpipe-overview"]
    end = render.default_range()[1]
    page = render.render_html(empty_store, dashboard, end - timedelta(days=1), end)
    assert page.count("Query failed") == len(list(iter_panels(dashboard)))
    with pytest.raises(Exception, match=r"usage_rollup_1[hd]"):
        render.render_html(empty_store, dashboard, end - timedelta(days=1), end, strict=True)
