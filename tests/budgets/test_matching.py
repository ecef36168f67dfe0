"""Budget matching and ledger keys."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.budgets.matching import (
    BudgetIndex,
    budget_matches,
    event_dimensions,
    ledger_key,
    matching_budgets,
)
from schemas.budgets import SCOPE_DIMENSIONS

from .conftest import budget, costed


def test_every_scope_dimension_must_equal() -> None:
    b = budget(scope={"tenant": "acme", "model": "gpt-4o"})
    assert budget_matches(b, {"tenant": "acme", "model": "gpt-4o", "user": "u"})
    assert not budget_matches(b, {"tenant": "acme", "model": "gpt-4o-mini"})
    assert not budget_matches(b, {"tenant": "acme"})
    assert not budget_matches(budget(scope={"user": "u"}), {"tenant": "acme", "user": ""})


def test_ledger_key_is_the_budget_id() -> None:
    assert ledger_key(budget(id="acme-monthly")) == "acme-monthly"


def test_event_dimensions_of_a_costed_record() -> None:
    dims = event_dimensions(costed("e", "1"))
    assert dims["tenant"] == "acme" and dims["model"] == "gpt-4o" and dims["user"] == ""
    assert set(dims) == set(SCOPE_DIMENSIONS)


VALUES = st.sampled_from(["a", "b"])
SCOPES = st.dictionaries(st.sampled_from(SCOPE_DIMENSIONS), VALUES, min_size=1, max_size=3)
EVENTS = st.fixed_dictionaries({d: st.sampled_from(["a", "b", ""]) for d in SCOPE_DIMENSIONS})


@given(st.lists(SCOPES, max_size=20), EVENTS)
def test_index_agrees_with_the_linear_scan(scopes, event) -> None:
    budgets = [budget(id=f"b{i}", scope=s) for i, s in enumerate(scopes)]
    assert BudgetIndex(budgets).match(event) == matching_budgets(budgets, event)


def test_index_refuses_duplicate_ids() -> None:
    import pytest

    with pytest.raises(ValueError, match="duplicate budget ids: x"):
        BudgetIndex([budget(id="x"), budget(id="x")])
    idx = BudgetIndex([budget(id="x")])
    assert idx.get("x") is not None and idx.get("y") is None
