"""The contracts: models, generated JSON Schema, examples and topics stay consistent."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import jsonschema
import pytest

from schemas import generate
from schemas.topics import USAGE_COSTED, USAGE_DLQ, USAGE_EVENTS, topics
from schemas.usage import UsageEvent
from schemas.validation import validate_payload

EXAMPLES = Path(generate.__file__).parent / "examples"


@pytest.mark.parametrize("name", sorted(generate.MODELS))
def test_checked_in_json_schema_is_current(name: str) -> None:
    on_disk = (generate.SCHEMA_DIR / name).read_text()
    assert on_disk == generate.render(generate.MODELS[name]), (
        f"{name} is stale: run `python -m schemas.generate`"
    )


def _valid_examples() -> list[Path]:
    return sorted(EXAMPLES.glob("usage_event.*.json"))


@pytest.mark.parametrize("path", _valid_examples(), ids=lambda p: p.name)
def test_examples_match_schema_and_model(path: Path) -> None:
    schema = json.loads((generate.SCHEMA_DIR / "usage_event.v1.json").read_text())
    data = json.loads(path.read_text())
    items = data if isinstance(data, list) else [data]
    for item in items:
        jsonschema.validate(item, schema)
    good, bad = validate_payload(path.read_bytes())
    assert bad == []
    assert len(good) == len(items)


def _invalid_cases() -> list[dict]:
    return json.loads((EXAMPLES / "invalid.cases.json").read_text())


@pytest.mark.parametrize("case", _invalid_cases(), ids=lambda c: c["name"])
def test_invalid_examples_report_every_field(case: dict) -> None:
    good, bad = validate_payload(json.dumps(case["item"]))
    assert good == []
    assert len(bad) == 1
    paths = sorted(p.path for p in bad[0].problems)
    assert paths == sorted(case["paths"]), bad[0].reason


def test_invalid_examples_also_fail_the_json_schema_where_it_can_tell() -> None:
    schema = json.loads((generate.SCHEMA_DIR / "usage_event.v1.json").read_text())
    for case in _invalid_cases():
        if case["paths"] == [""] or case["name"] == "naive timestamp":
            continue  # cross-field rule / tz-awareness: only the model can check these
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(case["item"], schema)


def test_unknown_top_level_fields_are_kept_in_attributes() -> None:
    path = EXAMPLES / "usage_event.anthropic_cache_write.json"
    event = UsageEvent.model_validate_json(path.read_bytes())
    assert event.attributes["sdk_version"] == "tokenpipe-py/0.1.0"
    raw = json.loads(path.read_text())
    raw["nested"] = {"a": [1, 2]}
    raw["attributes"] = {"nested": "explicit"}
    event = UsageEvent.model_validate(raw)
    assert event.attributes["nested"] == "explicit"
    assert json.loads(event.attributes["_extra.nested"]) == {"a": [1, 2]}
    assert "nested" not in event.model_dump()


def test_timestamps_normalised_to_utc() -> None:
    event = UsageEvent.model_validate_json(
        (EXAMPLES / "usage_event.openai_cached_reasoning.json").read_bytes()
    )
    assert event.ts.tzinfo is UTC
    assert event.ts.hour == 8 and event.ts.minute == 15


def test_mixed_batch_keeps_good_items_and_reports_bad_ones_by_index() -> None:
    ok = json.loads((EXAMPLES / "usage_event.minimal.json").read_text())
    payload = json.dumps([ok, {"tenant": "t"}, 7, ok])
    good, bad = validate_payload(payload)
    assert len(good) == 2
    assert [r.index for r in bad] == [1, 2]
    assert "expected a JSON object" in bad[1].reason


def test_malformed_json_is_one_rejection_not_an_exception() -> None:
    good, bad = validate_payload(b'{"event_id": "x", ')
    assert good == [] and len(bad) == 1
    assert bad[0].reason.startswith("malformed JSON")


def test_topics_declared_once_with_keys_and_policies() -> None:
    specs = topics()
    assert {USAGE_EVENTS, USAGE_COSTED, USAGE_DLQ} <= set(specs)
    assert specs[USAGE_EVENTS].key == "tenant"
    assert specs[USAGE_COSTED].partitions >= 1
    for spec in specs.values():
        if spec.schema == "internal":  # a topic between our own agents only
            assert spec.description.startswith("Internal"), spec.name
            continue
        assert (generate.SCHEMA_DIR / spec.schema).exists(), spec.schema
        assert int(spec.config["retention.ms"]) == spec.retention_hours * 3_600_000
