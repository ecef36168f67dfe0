"""Pricing: hand-checked costs, history, tiers, overrides, properties, fast path = genai-prices.

Expected values are computed by hand from the providers' published per-million prices
(as in genai-prices' catalog); ``e-6`` means "per token" (price per million / 1e6).
"""

from __future__ import annotations

import decimal
import random
import warnings
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.costing.overrides import parse_overrides
from pipeline.costing.pricing import PriceCatalog, PriceResult
from pipeline.costing.usage import TokenUsage
from pipeline.errors import ConfigError, UserError

AT = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog()


def D(text: str) -> Decimal:
    return Decimal(text)


# (model, provider, usage, expected total, expected parts: input, cache_read, cache_write,
#  output, reasoning)
HAND_CHECKED = [
    # gpt-4o: $2.50/M in, $1.25/M cached, $10/M out.
    # 6000*2.5e-6=0.015 + 4000*1.25e-6=0.005 + 2000*10e-6=0.02 -> 0.04
    ("gpt-4o", "openai", TokenUsage(10_000, 2_000, cache_read_tokens=4_000),
     "0.04", ("0.015", "0.005", "0", "0.02", "0")),
    # gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out.
    # 50000*0.15e-6=0.0075 + 50000*0.075e-6=0.00375 + 5000*0.6e-6=0.003 -> 0.01425
    ("gpt-4o-mini", None, TokenUsage(100_000, 5_000, cache_read_tokens=50_000),
     "0.01425", ("0.0075", "0.00375", "0", "0.003", "0")),
    # gpt-4.1: $2 in, $8 out. 1e6*2e-6=2 + 1e5*8e-6=0.8 -> 2.8
    ("gpt-4.1", "openai", TokenUsage(1_000_000, 100_000),
     "2.8", ("2", "0", "0", "0.8", "0")),
    # gpt-4.1-mini: $0.40 in, $0.10 cached, $1.60 out.
    # 10000*0.4e-6=0.004 + 10000*0.1e-6=0.001 + 1000*1.6e-6=0.0016 -> 0.0066
    ("gpt-4.1-mini", "openai", TokenUsage(20_000, 1_000, cache_read_tokens=10_000),
     "0.0066", ("0.004", "0.001", "0", "0.0016", "0")),
    # gpt-5 (reasoning): $1.25 in, $0.125 cached, $10 out (reasoning billed as output).
    # 1104*1.25e-6=0.00138 + 4096*0.125e-6=0.000512 + 1850*10e-6=0.0185 -> 0.020392;
    # reasoning share 1472*10e-6=0.01472
    ("gpt-5-2025-08-07", "openai",
     TokenUsage(5_200, 1_850, cache_read_tokens=4_096, reasoning_tokens=1_472),
     "0.020392", ("0.00138", "0.000512", "0", "0.0185", "0.01472")),
    # gpt-5-mini: $0.25 in, $2 out. 10000*0.25e-6=0.0025 + 20000*2e-6=0.04 -> 0.0425
    ("gpt-5-mini", "openai", TokenUsage(10_000, 20_000, reasoning_tokens=15_000),
     "0.0425", ("0.0025", "0", "0", "0.04", "0.03")),
    # o4-mini: $1.10 in, $0.275 cached, $4.40 out.
    # 1120*1.1e-6=0.001232 + 1280*0.275e-6=0.000352 + 3056*4.4e-6=0.0134464 -> 0.0150304
    ("o4-mini", None,
     TokenUsage(2_400, 3_056, cache_read_tokens=1_280, reasoning_tokens=2_240),
     "0.0150304", ("0.001232", "0.000352", "0", "0.0134464", "0.009856")),
    # o1: $15 in, $60 out. 1000*15e-6=0.015 + 1000*60e-6=0.06 -> 0.075
    ("o1", "openai", TokenUsage(1_000, 1_000, reasoning_tokens=800),
     "0.075", ("0.015", "0", "0", "0.06", "0.048")),
    # claude-sonnet-4-5 (<=200k input): $3 in, $0.30 read, $3.75 write, $15 out.
    # 21*3e-6=0.000063 + 188086*3.75e-6=0.7053225 + 393*15e-6=0.005895 -> 0.7112805
    ("claude-sonnet-4-5-20250929", "anthropic",
     TokenUsage(188_107, 393, cache_write_tokens=188_086),
     "0.7112805", ("0.000063", "0", "0.7053225", "0.005895", "0")),
    # claude-haiku-4-5: $1 in, $0.10 read, $1.25 write, $5 out.
    # 50*1e-6=0.00005 + 100000*0.1e-6=0.01 + 1200*5e-6=0.006 -> 0.01605
    ("claude-haiku-4-5-20251001", "anthropic",
     TokenUsage(100_050, 1_200, cache_read_tokens=100_000),
     "0.01605", ("0.00005", "0.01", "0", "0.006", "0")),
    # claude-opus-4-1: $15 in, $1.50 read, $18.75 write, $75 out.
    # 472*15e-6=0.00708 + 2048*1.5e-6=0.003072 + 15*75e-6=0.001125 -> 0.011277
    ("claude-opus-4-1-20250805", None, TokenUsage(2_520, 15, cache_read_tokens=2_048),
     "0.011277", ("0.00708", "0.003072", "0", "0.001125", "0")),
    # claude-3-5-haiku: $0.80 in, $0.08 read, $1 write, $4 out.
    # 2000*0.8e-6=0.0016 + 3000*0.08e-6=0.00024 + 5000*1e-6=0.005 + 1000*4e-6=0.004 -> 0.01084
    ("claude-3-5-haiku-latest", "anthropic",
     TokenUsage(10_000, 1_000, cache_read_tokens=3_000, cache_write_tokens=5_000),
     "0.01084", ("0.0016", "0.00024", "0.005", "0.004", "0")),
    # claude-opus-4-5: $5 in, $25 out. 1M*5e-6=5 + 1M*25e-6=25 -> 30
    ("claude-opus-4-5", "anthropic", TokenUsage(1_000_000, 1_000_000),
     "30", ("5", "0", "0", "25", "0")),
    # gemini-2.5-pro (<=200k): $1.25 in, $0.125 cached, $10 out (thoughts are output).
    # 4000*1.25e-6=0.005 + 8000*0.125e-6=0.001 + 2000*10e-6=0.02 -> 0.026
    ("gemini-2.5-pro", "google",
     TokenUsage(12_000, 2_000, cache_read_tokens=8_000, reasoning_tokens=1_200),
     "0.026", ("0.005", "0.001", "0", "0.02", "0.012")),
    # gemini-2.5-flash: $0.30 in, $2.50 out. 1e5*0.3e-6=0.03 + 1e4*2.5e-6=0.025 -> 0.055
    ("gemini-2.5-flash", "google", TokenUsage(100_000, 10_000, reasoning_tokens=8_000),
     "0.055", ("0.03", "0", "0", "0.025", "0.02")),
    # gemini-2.0-flash: $0.10 in, $0.40 out. 1M*0.1e-6=0.1 + 1M*0.4e-6=0.4 -> 0.5
    ("gemini-2.0-flash", None, TokenUsage(1_000_000, 1_000_000),
     "0.5", ("0.1", "0", "0", "0.4", "0")),
    # gemini-2.5-flash-lite: $0.10 in, $0.01 cached, $0.40 out.
    # 25000*0.1e-6=0.0025 + 25000*0.01e-6=0.00025 + 500*0.4e-6=0.0002 -> 0.00295
    ("gemini-2.5-flash-lite", "google", TokenUsage(50_000, 500, cache_read_tokens=25_000),
     "0.00295", ("0.0025", "0.00025", "0", "0.0002", "0")),
]


@pytest.mark.parametrize(("model", "provider", "usage", "total", "parts"), HAND_CHECKED,
                         ids=[c[0] for c in HAND_CHECKED])
def test_hand_checked_costs(catalog, model, provider, usage, total, parts) -> None:
    r = catalog.price(model, usage, AT, provider)
    assert r.priced, r.reason
    assert r.cost_usd == D(total)
    got = (r.input_cost_usd, r.cache_read_cost_usd, r.cache_write_cost_usd,
           r.output_cost_usd, r.reasoning_cost_usd)
    assert got == tuple(D(p) for p in parts)
    assert r.price_source == "genai-prices"
    assert r.price_version == f"genai-prices {genai_prices.__version__}"
    for amount in (r.cost_usd, *got):
        assert isinstance(amount, Decimal)
        assert amount.as_tuple().exponent == -9  # Decimal(18, 9)


def test_models_cover_three_providers() -> None:
    providers = {c[0].split("-")[0] for c in HAND_CHECKED}
    assert {"gpt", "claude", "gemini"} <= providers
    assert len(HAND_CHECKED) >= 15


def test_resolved_provider_and_model(catalog) -> None:
    r = catalog.price("gpt-5-2025-08-07", TokenUsage(1, 1), AT)
    assert (r.provider, r.model) == ("openai", "gpt-5")
    r = catalog.price("openai/gpt-4o", TokenUsage(1, 1), AT)
    assert (r.provider, r.model) == ("openai", "gpt-4o")


# --- tiers: the whole call is billed at the tier rate once input > 200k -----------
def test_gemini_25_pro_above_200k(catalog) -> None:
    # >200k: $2.50 in, $0.25 cached, $15 out.
    # 200000*2.5e-6=0.5 + 100000*0.25e-6=0.025 + 10000*15e-6=0.15 -> 0.675
    r = catalog.price("gemini-2.5-pro", TokenUsage(300_000, 10_000, cache_read_tokens=100_000),
                      AT, "google")
    assert r.cost_usd == D("0.675")
    assert (r.input_cost_usd, r.cache_read_cost_usd, r.output_cost_usd) == (
        D("0.5"), D("0.025"), D("0.15"))


def test_claude_sonnet_45_long_context(catalog) -> None:
    # >200k: $6 in, $0.60 read, $7.50 write, $22.50 out.
    # 150000*6e-6=0.9 + 100000*0.6e-6=0.06 + 1000*22.5e-6=0.0225 -> 0.9825
    r = catalog.price("claude-sonnet-4-5", TokenUsage(250_000, 1_000, cache_read_tokens=100_000),
                      AT, "anthropic")
    assert r.cost_usd == D("0.9825")
    # Exactly 200k is not above the threshold: base $3 -> 200000*3e-6 = 0.6
    r = catalog.price("claude-sonnet-4-5", TokenUsage(200_000, 0), AT, "anthropic")
    assert r.cost_usd == D("0.6")
    # 200001 is: 200001*6e-6 = 1.200006
    r = catalog.price("claude-sonnet-4-5", TokenUsage(200_001, 0), AT, "anthropic")
    assert r.cost_usd == D("1.200006")


# --- history: o3's price cut of 2025-06-10 ------------------------------------------
O3_USAGE = TokenUsage(10_000, 5_000, cache_read_tokens=2_000, reasoning_tokens=4_000)


def test_o3_before_price_cut(catalog) -> None:
    # before 2025-06-10: $10 in, $0.50 cached, $40 out (catalog)
    # 8000*10e-6=0.08 + 2000*0.5e-6=0.001 + 5000*40e-6=0.2 -> 0.281
    r = catalog.price("o3", O3_USAGE, datetime(2025, 6, 9, 23, 59, 59, tzinfo=UTC), "openai")
    assert r.cost_usd == D("0.281")


def test_o3_after_price_cut(catalog) -> None:
    # from 2025-06-10 00:00 UTC: $2 in, $0.50 cached, $8 out
    # 8000*2e-6=0.016 + 2000*0.5e-6=0.001 + 5000*8e-6=0.04 -> 0.057
    r = catalog.price("o3", O3_USAGE, datetime(2025, 6, 10, tzinfo=UTC), "openai")
    assert r.cost_usd == D("0.057")
    assert r.reasoning_cost_usd == D("0.032")  # 4000*8e-6


def test_price_change_is_at_utc_midnight(catalog) -> None:
    # 01:00 at +02:00 on the 10th is 23:00 UTC on the 9th: old price.
    at = datetime(2025, 6, 10, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert catalog.price("o3", O3_USAGE, at).cost_usd == D("0.281")


# --- unpriced, never a silent $0 --------------------------------------------------
def test_unknown_model_is_unpriced(catalog) -> None:
    r = catalog.price("no-such-model-xyz", TokenUsage(100, 100), AT)
    assert not r.priced and r.cost_usd == 0 and "unknown model" in (r.reason or "")


def test_unknown_provider_is_unpriced(catalog) -> None:
    r = catalog.price("gpt-4o", TokenUsage(100, 100), AT, provider="nosuchprovider")
    assert not r.priced and r.reason == "unknown provider 'nosuchprovider'"


def test_model_without_output_price(catalog) -> None:
    # text-embedding-3-small: $0.02/M input, no output price.
    ok = catalog.price("text-embedding-3-small", TokenUsage(1_000_000, 0), AT, "openai")
    assert ok.priced and ok.cost_usd == D("0.02")
    bad = catalog.price("text-embedding-3-small", TokenUsage(1_000, 10), AT, "openai")
    assert not bad.priced and "no output token price" in (bad.reason or "")


def test_naive_timestamp_rejected(catalog) -> None:
    with pytest.raises(UserError, match="timezone"):
        catalog.price("gpt-4o", TokenUsage(1, 1), datetime(2025, 1, 1))


def test_request_fee_and_separate_reasoning_price(catalog) -> None:
    # perplexity sonar: $1 in, $1 out, $12 per 1000 requests.
    # 1000*1e-6 + 1000*1e-6 + 12/1000 = 0.014
    r = catalog.price("sonar", TokenUsage(1_000, 1_000), AT, "perplexity")
    assert r.cost_usd == D("0.014") and r.request_cost_usd == D("0.012")
    # sonar-deep-research: $2 in, $8 out, $3 reasoning.
    # 1000*2e-6=0.002 + 4000*8e-6=0.032 + 6000*3e-6=0.018 -> 0.052
    r = catalog.price("sonar-deep-research", TokenUsage(1_000, 10_000, reasoning_tokens=6_000),
                      AT, "perplexity")
    assert r.cost_usd == D("0.052")
    assert (r.output_cost_usd, r.reasoning_cost_usd) == (D("0.05"), D("0.018"))


def test_rounding_to_nano_dollars(catalog) -> None:
    # gpt-4o-mini cached: 1 token * 0.075e-6 = 0.000000075 (exact at 9 dp)
    r = catalog.price("gpt-4o-mini", TokenUsage(1, 0, cache_read_tokens=1), AT, "openai")
    assert r.cost_usd == D("0.000000075")
    # gemini-1.5-flash cached $0.01875/M: 1 token = 1.875e-8 -> 0.000000019 (half-even)
    r = catalog.price("gemini-1.5-flash", TokenUsage(1, 0, cache_read_tokens=1), AT, "google")
    assert r.cost_usd == D("0.000000019")


def test_independent_of_caller_decimal_context(catalog) -> None:
    usage = TokenUsage(123_457, 98_765, cache_read_tokens=3, reasoning_tokens=11)
    expected = catalog.price("gpt-4o", usage, AT)
    with decimal.localcontext() as ctx:
        ctx.prec = 4
        ctx.rounding = decimal.ROUND_DOWN
        assert catalog.price("gpt-4o", usage, AT) == expected


def test_price_many_equals_price(catalog) -> None:
    items = [(m, p, u, AT) for m, p, u, _, _ in HAND_CHECKED] * 300  # > 1000 items
    many = catalog.price_many(items)
    assert many[: len(HAND_CHECKED)] == [catalog.price(m, u, at, p) for m, p, u, at in
                                         items[: len(HAND_CHECKED)]]
    assert len(many) == len(items)


def test_catalog_version(catalog) -> None:
    assert catalog.version == f"genai-prices {genai_prices.__version__}"


def test_models_listing(catalog) -> None:
    rows = {r.model: r for r in catalog.models("openai")}
    assert rows["gpt-4o"].input_mtok == D("2.5") and rows["gpt-4o"].output_mtok == D("10")
    assert rows["o3"].dated
    with pytest.raises(UserError):
        catalog.models("nosuchprovider")


# --- the fast path agrees with genai-prices' own calc_price ----------------------
CROSS_MODELS = [
    ("openai", "gpt-4o"), ("openai", "gpt-5"), ("openai", "o3"), ("openai", "gpt-5.4"),
    ("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-opus-4-6"),
    ("anthropic", "claude-3-haiku"), ("google", "gemini-2.5-pro"),
    ("google", "gemini-1.5-flash"), ("google", "gemini-3-pro-preview"),
    ("deepseek", "deepseek-chat"), ("perplexity", "sonar"),
    ("perplexity", "sonar-deep-research"), ("mistral", "mistral-large-latest"),
]


def test_fast_path_matches_genai_prices(catalog) -> None:
    rnd = random.Random(1)
    checked = 0
    for provider, model in CROSS_MODELS:
        for _ in range(40):
            n_in = rnd.choice([0, 1, 999, 150_000, 199_999, 200_000, 200_001, 272_001, 1_500_000])
            n_cr = rnd.randint(0, n_in)
            n_cw = rnd.randint(0, n_in - n_cr)
            n_out = rnd.randint(0, 50_000)
            n_rs = rnd.randint(0, n_out)
            at = datetime(2024, 6, 1, tzinfo=UTC) + timedelta(seconds=rnd.randint(0, 80_000_000))
            usage = TokenUsage(n_in, n_out, n_cr, n_cw, n_rs)
            ours = catalog.price(model, usage, at, provider)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = genai_prices.calc_price(
                    genai_prices.Usage(input_tokens=n_in, output_tokens=n_out,
                                       cache_read_tokens=n_cr, cache_write_tokens=n_cw,
                                       output_reasoning_tokens=n_rs),
                    model, provider_id=provider, genai_request_timestamp=at)
            assert ours.priced, (model, ours.reason)
            assert ours.cost_usd == theirs.total_price.quantize(D("1e-9")), (model, usage, at)
            checked += 1
    assert checked == 40 * len(CROSS_MODELS)


# --- properties ------------------------------------------------------------------
PROPERTY_MODELS = [(m, p) for m, p, *_ in HAND_CHECKED] + [("o3", "openai"),
                                                          ("sonar", "perplexity")]


@st.composite
def usages(draw: st.DrawFn) -> TokenUsage:
    n_in = draw(st.integers(0, 2_000_000))
    n_cr = draw(st.integers(0, n_in))
    n_cw = draw(st.integers(0, n_in - n_cr))
    n_out = draw(st.integers(0, 200_000))
    n_rs = draw(st.integers(0, n_out))
    return TokenUsage(n_in, n_out, n_cr, n_cw, n_rs)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PROPERTY_MODELS), usages(),
       st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2027, 12, 31),
                    timezones=st.just(UTC)))
def test_cost_never_negative_and_parts_consistent(catalog, model_provider, usage, at) -> None:
    model, provider = model_provider
    r = catalog.price(model, usage, at, provider)
    assert r.priced
    parts = (r.input_cost_usd, r.cache_read_cost_usd, r.cache_write_cost_usd,
             r.output_cost_usd, r.reasoning_cost_usd, r.request_cost_usd)
    assert r.cost_usd >= 0 and all(p >= 0 for p in parts)
    assert r.reasoning_cost_usd <= r.output_cost_usd
    part_sum = sum(parts[:4]) + r.request_cost_usd
    assert abs(part_sum - r.cost_usd) <= D("0.000000003")  # independent rounding only


def _grow(usage: TokenUsage, kind: str, k: int) -> TokenUsage:
    i, o, cr, cw, rs = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
                        usage.cache_write_tokens, usage.reasoning_tokens)
    if kind == "input":
        return TokenUsage(i + k, o, cr, cw, rs)
    if kind == "cache_read":
        return TokenUsage(i + k, o, cr + k, cw, rs)
    if kind == "cache_write":
        return TokenUsage(i + k, o, cr, cw + k, rs)
    if kind == "output":
        return TokenUsage(i, o + k, cr, cw, rs)
    return TokenUsage(i, o + k, cr, cw, rs + k)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PROPERTY_MODELS), usages(),
       st.sampled_from(["input", "cache_read", "cache_write", "output", "reasoning"]),
       st.integers(1, 500_000))
def test_cost_monotone_in_every_count(catalog, model_provider, usage, kind, k) -> None:
    """Adding tokens of any kind (and to its total) never lowers the cost."""
    model, provider = model_provider
    before = catalog.price(model, usage, AT, provider)
    after = catalog.price(model, _grow(usage, kind, k), AT, provider)
    assert after.cost_usd >= before.cost_usd


# --- TokenUsage validation --------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_tokens": -1, "output_tokens": 0}, "input_tokens"),
        ({"input_tokens": 1, "output_tokens": -5}, "output_tokens"),
        ({"input_tokens": 1.0, "output_tokens": 0}, "input_tokens"),
        ({"input_tokens": True, "output_tokens": 0}, "input_tokens"),
        ({"input_tokens": 1, "output_tokens": 0, "cache_read_tokens": 2}, "cache_read_tokens"),
        ({"input_tokens": 5, "output_tokens": 0, "cache_read_tokens": 3,
          "cache_write_tokens": 3}, "cache_write_tokens"),
        ({"input_tokens": 1, "output_tokens": 1, "reasoning_tokens": 2}, "reasoning_tokens"),
    ],
)
def test_token_usage_validation(kwargs, field) -> None:
    with pytest.raises(UserError, match=field):
        TokenUsage(**kwargs)
    with pytest.raises(UserError, match=field):
        TokenUsage.checked(**kwargs)


# --- overrides --------------------------------------------------------------------
OVERRIDES = """\
version: 1
aliases:
  chat-default: openai/gpt-4o
  house-model: acme/acme-large
models:
  - provider: acme
    model: acme-large
    match: [acme-large-2025-01]
    prices:
      - valid_from: 2025-01-01
        input: 1.00
        cache_read: 0.10
        output: 4.00
      - valid_from: 2025-07-01
        input: 0.80
        output: 3.20
  - provider: openai
    model: gpt-4o-mini
    prices:
      - valid_from: 2025-03-01T00:00:00+00:00
        input: 0.10
        output: 0.50
discounts:
  - provider: anthropic
    multiplier: 0.8
    valid_from: 2025-06-01
  - provider: anthropic
    model: claude-opus-4-1
    multiplier: 0.5
"""


@pytest.fixture()
def with_overrides(tmp_path: Path) -> PriceCatalog:
    path = tmp_path / "overrides.yaml"
    path.write_text(OVERRIDES)
    return PriceCatalog(path)


def test_alias_resolves_to_catalog_model(with_overrides) -> None:
    r = with_overrides.price("chat-default", TokenUsage(10_000, 2_000, cache_read_tokens=4_000),
                             AT)
    assert (r.provider, r.model, r.cost_usd) == ("openai", "gpt-4o", D("0.04"))


def test_custom_model_with_history(with_overrides) -> None:
    usage = TokenUsage(1_000_000, 1_000_000, cache_read_tokens=500_000)
    # 2025-02: $1 in, $0.10 cached, $4 out -> 0.5 + 0.05 + 4 = 4.55
    r = with_overrides.price("acme-large", usage, datetime(2025, 2, 1, tzinfo=UTC))
    assert r.priced and r.cost_usd == D("4.55") and r.price_source == "override"
    assert r.price_version.startswith("overrides sha256:")
    # 2025-08: $0.80 in (cache read defaults to input), $3.20 out -> 0.8 + 3.2 = 4.0
    r = with_overrides.price("acme-large-2025-01", usage, datetime(2025, 8, 1, tzinfo=UTC),
                             "acme")
    assert r.cost_usd == D("4.0")
    assert with_overrides.price("house-model", usage, datetime(2025, 8, 1, tzinfo=UTC)) == r
    # Before the first valid_from there is no price: unpriced, with the reason.
    r = with_overrides.price("acme-large", usage, datetime(2024, 12, 31, tzinfo=UTC))
    assert not r.priced and "before 2025-01-01" in (r.reason or "")


def test_override_of_catalog_model_from_valid_from(with_overrides) -> None:
    usage = TokenUsage(1_000_000, 1_000_000)
    before = with_overrides.price("gpt-4o-mini", usage, datetime(2025, 2, 28, tzinfo=UTC))
    assert before.cost_usd == D("0.75") and before.price_source == "genai-prices"  # 0.15+0.6
    after = with_overrides.price("gpt-4o-mini", usage, datetime(2025, 3, 1, tzinfo=UTC))
    assert after.cost_usd == D("0.6") and after.price_source == "override"  # 0.10+0.50


def test_discounts(with_overrides) -> None:
    usage = TokenUsage(1_000_000, 1_000_000)
    # claude-haiku-4-5 $1 + $5 = 6; provider discount 0.8 from 2025-06-01 -> 4.8
    before = with_overrides.price("claude-haiku-4-5", usage, datetime(2025, 5, 31, tzinfo=UTC))
    after = with_overrides.price("claude-haiku-4-5", usage, AT)
    assert (before.cost_usd, after.cost_usd) == (D("6"), D("4.8"))
    assert after.price_source == "override" and "+overrides" in after.price_version
    # model-specific 0.5 wins over the provider's 0.8: opus-4-1 $15 + $75 = 90 -> 45
    assert with_overrides.price("claude-opus-4-1", usage, AT).cost_usd == D("45")


def test_example_overrides_file_loads() -> None:
    cat = PriceCatalog(REPO / "deploy" / "prices" / "overrides.example.yaml")
    r = cat.price("chat-default", TokenUsage(1_000_000, 0), AT)
    assert r.priced and r.cost_usd == D("2.5")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n  - provider: a\n    model: m\n    prices:\n      input: -1\n      output: 1\n",
         r":5: models\[0\]\.prices\.input: expected a finite non-negative number"),
        ("models:\n  - provider: a\n    model: m\n    prices: {input: 1}\n",
         r":4: models\[0\]\.prices: missing field 'output'"),
        ("discounts:\n  - provider: openai\n    multiplier: 8\n",
         r":3: discounts\[0\]\.multiplier: must be > 0"),
        ("aliases:\n  x: gpt-4o\n", r":2: aliases\.x: expected 'provider/model'"),
        ("modles: []\n", r":1: top level: unknown field 'modles'"),
        ("models:\n  - provider: a\n    model: m\n    prices:\n      valid_from: 2025-01-01T00:00\n"
         "      input: 1\n      output: 1\n", r":5: .*valid_from: .*needs a UTC offset"),
        ("aliases: [\n", r"not valid YAML"),
        ("models:\n  - provider: a\n    model: m\n    prices:\n      input: abc\n      output: 1\n",
         r":5: models\[0\]\.prices\.input: expected a number"),
    ],
)
def test_bad_overrides_name_line_and_field(text, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_overrides(text, "ov.yaml")


def test_missing_overrides_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        PriceCatalog(tmp_path / "nope.yaml")


def test_result_is_frozen(catalog) -> None:
    r = catalog.price("gpt-4o", TokenUsage(1, 1), AT)
    assert isinstance(r, PriceResult)
    with pytest.raises(AttributeError):
        r.cost_usd = D("0")  # type: ignore[misc]
