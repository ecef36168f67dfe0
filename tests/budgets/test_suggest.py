"""Cheaper-model suggestions priced with the real catalog."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pipeline.budgets.ledger import new_state, reserve
from pipeline.budgets.suggest import ModelFallback, fallback_chain, suggest_cheaper
from pipeline.costing.pricing import PriceCatalog
from pipeline.costing.usage import TokenUsage

from .conftest import T0, budget, request

AT = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog()


def test_chains_follow_snapshots_transitively_without_confusing_minis() -> None:
    assert fallback_chain("gpt-4o-2024-08-06") == ["gpt-4o-mini"]
    assert fallback_chain("openai/gpt-4o") == ["gpt-4o-mini"]
    assert fallback_chain("gpt-4o-mini") == []
    assert fallback_chain("claude-3-opus-20240229") == [
        "claude-3-5-sonnet",
        "claude-3-5-haiku",
        "claude-3-haiku",
    ]
    assert fallback_chain("x", {"x": ["y"], "y": ["x", "z"]}) == ["y", "z"]


def test_first_fitting_cheaper_model(catalog: PriceCatalog) -> None:
    usage = TokenUsage(input_tokens=10_000, output_tokens=1_000)
    full = catalog.price("gpt-4o", usage, AT).cost_usd
    s = suggest_cheaper(catalog, "gpt-4o", usage, full / 2, at=AT)
    assert s is not None and s.model == "gpt-4o-mini" and s.provider == "openai"
    assert s.estimate_usd == catalog.price("gpt-4o-mini", usage, AT).cost_usd
    assert s.saves_usd == full - s.estimate_usd
    assert suggest_cheaper(catalog, "gpt-4o", usage, Decimal("0.0000001"), at=AT) is None
    assert suggest_cheaper(catalog, "no-such-model", usage, Decimal(100), at=AT) is None


def test_skips_alternatives_that_do_not_fit(catalog: PriceCatalog) -> None:
    usage = TokenUsage(input_tokens=100_000, output_tokens=10_000)
    sonnet = catalog.price("claude-3-5-sonnet", usage, AT).cost_usd
    haiku3 = catalog.price("claude-3-haiku", usage, AT).cost_usd
    s = suggest_cheaper(catalog, "claude-3-opus", usage, haiku3, at=AT, provider="anthropic")
    assert sonnet > haiku3
    assert s is not None and s.model == "claude-3-haiku"


def test_model_fallback_as_the_ledgers_suggester(catalog: PriceCatalog) -> None:
    defn = budget(limit_usd=Decimal("0.01"))
    req = request("r1", "0.0375", input_tokens=5_000, output_tokens=2_500)
    _, d = reserve(new_state(defn), defn, req, T0, suggest=ModelFallback(catalog))
    assert not d.allowed and d.suggestion is not None
    assert d.suggestion.model == "gpt-4o-mini" and d.suggestion.estimate_usd <= Decimal("0.01")
    no_split = request("r2", "0.0375")
    _, d = reserve(new_state(defn), defn, no_split, T0, suggest=ModelFallback(catalog))
    assert d.suggestion is None
