"""Pre-flight estimates: input count, worst-case/expected output and cost."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pipeline.costing.estimate import (
    DEFAULT_EXPECTED_OUTPUT_TOKENS,
    DEFAULT_EXPECTED_OUTPUT_TOKENS_REASONING,
    context_window,
    estimate_request,
    max_output_tokens,
)
from pipeline.costing.pricing import PriceCatalog
from pipeline.costing.tokens import FAMILY_ERROR, count_messages
from pipeline.costing.usage import TokenUsage
from pipeline.errors import UserError

AT = datetime(2025, 6, 1, tzinfo=UTC)
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarise the plot of Hamlet in three sentences."},
]


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog()


def test_worst_case_uses_max_tokens_and_catalog_prices(catalog: PriceCatalog) -> None:
    est = estimate_request("gpt-4o", MESSAGES, max_tokens=500, catalog=catalog, at=AT)
    n = count_messages(MESSAGES, "gpt-4o").tokens
    assert est.input_tokens == n == est.worst_case_input_tokens
    assert est.input_exact is True
    assert est.worst_case_output_tokens == 500
    assert est.output_limit_source == "max_tokens"
    assert est.expected_output_tokens == 500  # default expectation capped at the worst case
    assert est.priced is True
    assert est.worst_case_cost_usd == catalog.price("gpt-4o", TokenUsage(n, 500), AT).cost_usd
    assert isinstance(est.worst_case_cost_usd, Decimal)
    # gpt-4o in mid-2025: $2.50 / MTok in, $10 / MTok out.
    assert est.worst_case_cost_usd == Decimal(n) * Decimal("2.5e-6") + Decimal("0.005")


def test_worst_case_without_max_tokens_uses_model_limit(catalog: PriceCatalog) -> None:
    est = estimate_request("gpt-4o-2024-08-06", MESSAGES, catalog=catalog, at=AT)
    assert est.worst_case_output_tokens == 16384
    assert est.output_limit_source == "model_table"
    assert est.expected_output_tokens == DEFAULT_EXPECTED_OUTPUT_TOKENS
    assert est.expected_cost_usd is not None and est.worst_case_cost_usd is not None
    assert est.expected_cost_usd < est.worst_case_cost_usd


def test_worst_case_output_bounded_by_context_window(catalog: PriceCatalog) -> None:
    window = context_window("gpt-4")
    assert window == 8192
    est = estimate_request("gpt-4", MESSAGES, catalog=catalog, at=AT)
    assert est.worst_case_output_tokens == 8192 - est.input_tokens
    assert est.output_limit_source == "context_window"
    big = estimate_request("gpt-4", MESSAGES, max_tokens=100_000, catalog=catalog, at=AT)
    assert big.worst_case_output_tokens == 8192 - big.input_tokens


def test_reasoning_models_expect_more_output(catalog: PriceCatalog) -> None:
    est = estimate_request("o3", MESSAGES, catalog=catalog, at=AT)
    assert est.expected_output_tokens == DEFAULT_EXPECTED_OUTPUT_TOKENS_REASONING
    assert est.worst_case_output_tokens == 100_000


def test_expected_output_argument(catalog: PriceCatalog) -> None:
    est = estimate_request(
        "gpt-4o-mini",
        MESSAGES,
        max_tokens=1000,
        expected_output_tokens=200,
        catalog=catalog,
        at=AT,
    )
    n = est.input_tokens
    assert est.expected_output_tokens == 200
    assert est.expected_cost_usd == catalog.price("gpt-4o-mini", TokenUsage(n, 200), AT).cost_usd


def test_estimated_input_inflated_in_worst_case(catalog: PriceCatalog) -> None:
    est = estimate_request("claude-sonnet-4-5", MESSAGES, max_tokens=100, catalog=catalog, at=AT)
    assert est.input_exact is False
    assert est.worst_case_input_tokens == math.ceil(est.input_tokens * (1 + FAMILY_ERROR["claude"]))
    assert est.priced is True
    assert (
        est.worst_case_cost_usd
        == catalog.price(
            "claude-sonnet-4-5", TokenUsage(est.worst_case_input_tokens, 100), AT
        ).cost_usd
    )


def test_unknown_model_is_not_priced_never_zero(catalog: PriceCatalog) -> None:
    est = estimate_request("no-such-model-9", MESSAGES, max_tokens=10, catalog=catalog, at=AT)
    assert est.priced is False
    assert est.worst_case_cost_usd is None and est.expected_cost_usd is None
    assert est.price_reason


def test_unknown_output_limit_needs_max_tokens(catalog: PriceCatalog) -> None:
    with pytest.raises(UserError, match="max_tokens"):
        estimate_request("no-such-model-9", MESSAGES, catalog=catalog, at=AT)


def test_bad_arguments(catalog: PriceCatalog) -> None:
    with pytest.raises(UserError, match="max_tokens"):
        estimate_request("gpt-4o", MESSAGES, max_tokens=0, catalog=catalog, at=AT)
    with pytest.raises(UserError, match=r"messages\[0\]\.role"):
        estimate_request("gpt-4o", [{"content": "x"}], catalog=catalog, at=AT)


@pytest.mark.parametrize(
    ("model", "limit"),
    [
        ("gpt-4o", 16384),
        ("gpt-4o-2024-05-13", 4096),
        ("openai/gpt-4.1-mini", 32768),
        ("gpt-5-nano", 128000),
        ("o1-mini", 65536),
        ("claude-3-5-sonnet-20241022", 8192),
        ("claude-opus-4-1", 32000),
        ("claude-sonnet-4-5-20250929", 64000),
        ("gemini-2.5-flash", 65536),
        ("unknown-model", None),
    ],
)
def test_max_output_table(model: str, limit: int | None) -> None:
    assert max_output_tokens(model) == limit


def test_to_dict_keeps_decimal_precision(catalog: PriceCatalog) -> None:
    est = estimate_request("gpt-4o", MESSAGES, max_tokens=7, catalog=catalog, at=AT)
    d = est.to_dict()
    assert d["worst_case_cost_usd"] == str(est.worst_case_cost_usd)
    assert d["input_tokens"] == est.input_tokens
