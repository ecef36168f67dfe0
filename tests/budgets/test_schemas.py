"""Budget contracts: validation with clear field errors, examples, deterministic alert ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

import schemas
from schemas.budgets import (
    Alert,
    BudgetDefinition,
    ReserveDecision,
    ReserveRequest,
    alert_id,
)

EXAMPLES = Path(schemas.__file__).parent / "examples"


def _errors(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as exc:
        BudgetDefinition.model_validate(data)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in exc.value.errors()]


GOOD = {"id": "b", "scope": {"tenant": "acme"}, "period": "day", "limit_usd": "5"}


def test_defaults() -> None:
    b = BudgetDefinition.model_validate(GOOD)
    assert b.thresholds == [50, 75, 90, 100]
    assert b.mode == "hard" and b.unit == "usd" and b.limit == Decimal(5)


@pytest.mark.parametrize(
    ("patch", "where", "needle"),
    [
        ({"scope": {}}, "scope", "at least one dimension"),
        ({"scope": {"colour": "red"}}, "scope.colour.[key]", "'tenant', 'team'"),
        ({"scope": {"tenant": ""}}, "scope.tenant", ""),
        ({"limit_tokens": 10}, "", "exactly one of limit_usd and limit_tokens"),
        ({"limit_usd": None}, "", "exactly one"),
        ({"limit_usd": "0"}, "limit_usd", "greater than 0"),
        ({"period": "rolling"}, "", "rolling_days is required"),
        ({"rolling_days": 3}, "", "only applies to period 'rolling'"),
        ({"period": "year"}, "period", ""),
        ({"thresholds": [50, 50]}, "thresholds", "must not repeat"),
        ({"thresholds": [0]}, "thresholds.0", ""),
        ({"mode": "strict"}, "mode", ""),
        ({"id": "has space"}, "id", "pattern"),
        ({"max_requests_per_minute": 0}, "max_requests_per_minute", ""),
        ({"surprise": 1}, "surprise", "Extra inputs"),
    ],
)
def test_validation_names_the_field(patch: dict, where: str, needle: str) -> None:
    data = {**GOOD, **patch}
    errors = _errors(data)
    assert any(loc == where and needle in msg for loc, msg in errors), errors


def test_yaml_floats_become_exact_decimals() -> None:
    assert BudgetDefinition.model_validate({**GOOD, "limit_usd": 0.1}).limit_usd == Decimal("0.1")


def test_thresholds_sorted_and_emergency_joins() -> None:
    b = BudgetDefinition.model_validate({**GOOD, "thresholds": [90, 50], "emergency_threshold": 98})
    assert b.thresholds == [50, 90]
    assert b.all_thresholds == (50, 90, 98)


def test_reserve_request_needs_an_estimate() -> None:
    with pytest.raises(ValidationError, match="estimate_usd or estimate_tokens"):
        ReserveRequest(request_id="r", dimensions={"tenant": "a"}, model="m")
    r = ReserveRequest(
        request_id="r", dimensions={"tenant": "a"}, model="m", input_tokens=3, output_tokens=4
    )
    assert r.estimate_tokens == 7
    assert r.scope_dimensions() == {"tenant": "a", "model": "m"}


def test_alert_id_is_deterministic() -> None:
    ps = datetime(2025, 6, 1, tzinfo=UTC)
    assert alert_id("b", ps, 50) == alert_id("b", ps, 50)
    assert (
        len(
            {
                alert_id("b", ps, 50),
                alert_id("b", ps, 75),
                alert_id("c", ps, 50),
                alert_id("b", datetime(2025, 7, 1, tzinfo=UTC), 50),
            }
        )
        == 4
    )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("budget.*.json")), ids=lambda p: p.name)
def test_examples_validate(path: Path) -> None:
    models: dict[str, type[BaseModel]] = {
        "definition": BudgetDefinition,
        "reserve_request": ReserveRequest,
        "reserve_decision": ReserveDecision,
        "alert": Alert,
    }
    model = models[path.name.split(".")[1]]
    obj = model.model_validate_json(path.read_bytes())
    again = model.model_validate(json.loads(obj.model_dump_json()))
    assert again == obj
    if isinstance(obj, Alert):
        assert obj.alert_id == alert_id(obj.budget_id, obj.period_start, obj.threshold)
