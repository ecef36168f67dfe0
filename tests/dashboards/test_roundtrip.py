"""Every dashboard survives a round trip through the SDK's typed models, targets typed."""

from __future__ import annotations

import json

import pytest
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.models import dashboard as models

from dashboards.generate import to_json_text
from dashboards.query import ClickHouseQuery, register
from tests.dashboards.conftest import JSON_DIR

FILES = sorted(JSON_DIR.glob("*.json"))


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    register()


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_round_trip_is_identical(path) -> None:
    text = path.read_text(encoding="utf-8")
    typed = models.Dashboard.from_json(json.loads(text))
    assert to_json_text(typed) == text


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_targets_and_options_decode_to_typed_models(path) -> None:
    typed = models.Dashboard.from_json(json.loads(path.read_text(encoding="utf-8")))
    assert typed.panels
    for panel in typed.panels:
        if isinstance(panel, models.RowPanel):
            continue
        assert panel.targets, panel.title
        for target in panel.targets:
            assert isinstance(target, ClickHouseQuery), (panel.title, type(target))
            assert not isinstance(target, UnknownDataquery)
            assert target.extra == {}, f"unexpected target keys in {panel.title}: {target.extra}"
        # the SDK's panel plugins decode options into their typed Options classes
        assert not isinstance(panel.options, dict), (panel.type_val, panel.title)
    assert typed.templating is not None and typed.templating.list_val


def test_unknown_target_keys_survive() -> None:
    data = {
        "refId": "B",
        "rawSql": "SELECT 1",
        "format": 1,
        "queryType": "table",
        "editorType": "sql",
        "meta": {"timezone": "UTC"},
    }
    q = ClickHouseQuery.from_json(data)
    assert q.extra == {"meta": {"timezone": "UTC"}}
    assert json.loads(json.dumps(q.to_json())) == data
