"""The checked-in JSON is exactly what the code generates, and generation is stable."""

from __future__ import annotations

import json

from dashboards import generate
from dashboards.catalog import builders
from tests.dashboards.conftest import JSON_DIR


def test_checked_in_json_is_up_to_date() -> None:
    assert generate.stale() == [], "run: python -m dashboards.generate"


def test_generation_is_deterministic() -> None:
    assert generate.render_all() == generate.render_all()


def test_file_names_are_the_fixed_uids() -> None:
    uids = list(builders())
    assert uids == [
        "tokenpipe-overview",
        "tokenpipe-models",
        "tokenpipe-users",
        "tokenpipe-forecast",
        "tokenpipe-optimization",
        "tokenpipe-budgets",
        "tokenpipe-anomalies",
    ]
    for uid in uids:
        data = json.loads((JSON_DIR / f"{uid}.json").read_text(encoding="utf-8"))
        assert data["uid"] == uid


def test_canonical_text_is_sorted_and_newline_terminated() -> None:
    for text in generate.render_all().values():
        assert text.endswith("}\n")
        assert (
            text
            == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


def test_check_mode_reports_a_stale_file(tmp_path) -> None:
    generate.write_all(tmp_path)
    assert generate.stale(tmp_path) == []
    victim = tmp_path / "tokenpipe-overview.json"
    victim.write_text(
        victim.read_text(encoding="utf-8").replace("Overview", "Overveiw"), encoding="utf-8"
    )
    (tmp_path / "leftover.json").write_text("{}", encoding="utf-8")
    assert generate.stale(tmp_path) == ["tokenpipe-overview.json", "leftover.json"]
    generate.write_all(tmp_path)
    assert generate.stale(tmp_path) == []
    assert not (tmp_path / "leftover.json").exists()
