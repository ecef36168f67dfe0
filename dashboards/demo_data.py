"""Deterministic synthetic usage for the dashboards: tests, the renderer, demos.

``generate_rows(n, days, end, seed)`` yields ``usage_raw`` rows (in
``RAW_COLUMNS`` order) for a small fictional customer base: four tenants of
different sizes, teams, users and API keys per tenant, seven features with their
own token profiles, and seven models from three providers (one unpriced). Costs
follow the usage contract: ``input_tokens`` includes cache reads and writes,
``output_tokens`` includes reasoning, ``input_cost_usd`` prices only the uncached
input, ``cost_usd`` is the sum of the parts, Decimal with 9 places. The shape is
chosen so every dashboard panel has something to show: a feature with tiny
outputs on an expensive model (downgrade candidate), large uncached prompts
(caching opportunity), a heavily cached feature (savings), reasoning on o3-mini,
errors and unpriced calls.

``load(store, ...)`` inserts them through ``Store.insert_rows`` in batches (the
rollup materialized views fill the rollups on insert). Same arguments, same rows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pipeline.migrate import DECLARED_SCHEMA
from pipeline.store import Store

RAW_COLUMNS: list[str] = [c for c, _ in DECLARED_SCHEMA["usage_raw"] if c != "ingested_at"]

_NANO = Decimal("0.000000001")
_PER_TOKEN = Decimal(1) / Decimal(1_000_000)


@dataclass(frozen=True)
class Model:
    provider: str
    name: str
    input_per_m: Decimal  # USD per 1M uncached input tokens
    cache_read_per_m: Decimal
    cache_write_per_m: Decimal
    output_per_m: Decimal
    priced: bool = True
    reasoning: bool = False


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            "openai", "gpt-4o", Decimal("2.50"), Decimal("1.25"), Decimal("2.50"), Decimal("10.00")
        ),
        Model(
            "openai",
            "gpt-4o-mini",
            Decimal("0.15"),
            Decimal("0.075"),
            Decimal("0.15"),
            Decimal("0.60"),
        ),
        Model(
            "openai",
            "o3-mini",
            Decimal("1.10"),
            Decimal("0.55"),
            Decimal("1.10"),
            Decimal("4.40"),
            reasoning=True,
        ),
        Model(
            "anthropic",
            "claude-sonnet-4",
            Decimal("3.00"),
            Decimal("0.30"),
            Decimal("3.75"),
            Decimal("15.00"),
        ),
        Model(
            "anthropic",
            "claude-3-5-haiku",
            Decimal("0.80"),
            Decimal("0.08"),
            Decimal("1.00"),
            Decimal("4.00"),
        ),
        Model(
            "google",
            "gemini-2.0-flash",
            Decimal("0.10"),
            Decimal("0.025"),
            Decimal("0.10"),
            Decimal("0.40"),
        ),
        Model(
            "selfhosted",
            "llama-3.1-70b-local",
            Decimal(0),
            Decimal(0),
            Decimal(0),
            Decimal(0),
            priced=False,
        ),
    )
}


@dataclass(frozen=True)
class Feature:
    name: str
    models: tuple[tuple[str, float], ...]  # (model, weight)
    input_median: int
    output_median: int
    cache_read_share: float  # typical share of input read from cache (0 = never cached)
    weight: float


FEATURES: tuple[Feature, ...] = (
    Feature("chat", (("gpt-4o", 3), ("gpt-4o-mini", 4), ("claude-sonnet-4", 2)), 1500, 400, 0.3, 5),
    Feature("search", (("gpt-4o-mini", 3), ("gemini-2.0-flash", 3)), 6000, 200, 0.0, 3),
    Feature("summarize", (("claude-3-5-haiku", 3), ("gpt-4o", 1)), 8000, 300, 0.05, 2),
    Feature("code-review", (("claude-sonnet-4", 5), ("o3-mini", 1)), 12000, 800, 0.7, 2),
    Feature(
        "agent",
        (("o3-mini", 3), ("claude-sonnet-4", 2), ("llama-3.1-70b-local", 0.3)),
        4000,
        600,
        0.4,
        2,
    ),
    Feature("classify", (("gpt-4o", 4), ("claude-sonnet-4", 1)), 800, 8, 0.0, 3),
    Feature(
        "extract", (("gpt-4o-mini", 2), ("gemini-2.0-flash", 1), ("gpt-4o", 1)), 3000, 150, 0.1, 2
    ),
)


@dataclass(frozen=True)
class Tenant:
    name: str
    weight: float
    teams: tuple[str, ...]
    users: int
    keys: int


TENANTS: tuple[Tenant, ...] = (
    Tenant("acme", 5, ("platform", "support", "research"), 14, 4),
    Tenant("globex", 3, ("core", "growth"), 9, 3),
    Tenant("initech", 1.5, ("it", "finance"), 6, 2),
    Tenant("umbrella", 0.5, ("lab",), 3, 1),
)


def _cost(tokens: int, per_m: Decimal) -> Decimal:
    return (Decimal(tokens) * per_m * _PER_TOKEN).quantize(_NANO)


def _lognormal(rng: random.Random, median: int, sigma: float = 0.6) -> int:
    return max(1, int(rng.lognormvariate(math.log(median), sigma)))


def _diurnal_weight(ts: datetime) -> float:
    """Busier in working hours (UTC) and on weekdays."""
    hour = ts.hour + ts.minute / 60
    day = 0.35 + 0.65 * math.exp(-(((hour - 14) / 5) ** 2))
    return day * (0.45 if ts.weekday() >= 5 else 1.0)


def default_end() -> datetime:
    """The default end of the data: now, to the minute (UTC)."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def generate_rows(
    n: int = 50_000, *, days: int = 30, end: datetime | None = None, seed: int = 7
) -> Iterator[tuple]:
    """``n`` usage_raw rows with ``ts`` in ``[end - days, end)``, deterministic for equal args."""
    end = (end or default_end()).astimezone(UTC)
    start = end - timedelta(days=days)
    span = (end - start).total_seconds()
    rng = random.Random(seed)
    feature_weights = [f.weight for f in FEATURES]
    tenant_weights = [t.weight for t in TENANTS]
    people = {
        t.name: [
            (f"{t.name}-user{i:02d}", t.teams[i % len(t.teams)], f"{t.name}-key{i % t.keys + 1}")
            for i in range(t.users)
        ]
        for t in TENANTS
    }
    for i in range(n):
        while True:  # rejection sampling of the diurnal/weekly shape
            ts = start + timedelta(seconds=rng.random() * span)
            if rng.random() < _diurnal_weight(ts):
                break
        ts = ts.replace(microsecond=(ts.microsecond // 1000) * 1000)
        tenant = rng.choices(TENANTS, tenant_weights)[0]
        # a few heavy users per tenant: Zipf-like pick
        idx = min(int(rng.paretovariate(1.2)) - 1, tenant.users - 1)
        user, team, key = people[tenant.name][idx]
        feature = rng.choices(FEATURES, feature_weights)[0]
        model = MODELS[
            rng.choices([m for m, _ in feature.models], [w for _, w in feature.models])[0]
        ]
        status = "error" if rng.random() < 0.02 else "ok"
        input_tokens = _lognormal(rng, feature.input_median)
        output_tokens = 0 if status == "error" else _lognormal(rng, feature.output_median, 0.5)
        cache_read = 0
        cache_write = 0
        if feature.cache_read_share > 0 and rng.random() < 0.85:
            share = min(0.95, max(0.0, rng.gauss(feature.cache_read_share, 0.1)))
            cache_read = int(input_tokens * share)
            if model.provider == "anthropic" and rng.random() < 0.1:
                cache_write = int((input_tokens - cache_read) * 0.5)
        reasoning = int(output_tokens * rng.uniform(0.4, 0.8)) if model.reasoning else 0
        uncached = input_tokens - cache_read - cache_write
        if model.priced:
            c_in = _cost(uncached, model.input_per_m)
            c_cr = _cost(cache_read, model.cache_read_per_m)
            c_cw = _cost(cache_write, model.cache_write_per_m)
            c_out = _cost(output_tokens, model.output_per_m)
        else:
            c_in = c_cr = c_cw = c_out = Decimal(0)
        row = {
            "event_id": f"demo-{seed}-{i:08d}",
            "ts": ts,
            "tenant": tenant.name,
            "user": user,
            "team": team,
            "feature": feature.name,
            "api_key_id": key,
            "provider": model.provider,
            "model": model.name,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "reasoning_tokens": reasoning,
            "cost_usd": c_in + c_cr + c_cw + c_out,
            "input_cost_usd": c_in,
            "cache_read_cost_usd": c_cr,
            "cache_write_cost_usd": c_cw,
            "output_cost_usd": c_out,
            "priced": model.priced,
            "price_source": "demo" if model.priced else "",
            "price_version": "demo-1" if model.priced else "",
            "request_id": f"req-{seed}-{i:08d}",
            "reservation_id": "",
            "latency_ms": int(200 + output_tokens * rng.uniform(8, 25) + input_tokens * 0.02),
            "status": status,
            "attributes": {"env": "demo"},
        }
        yield tuple(row[c] for c in RAW_COLUMNS)


def load(
    store: Store,
    n: int = 50_000,
    *,
    days: int = 30,
    end: datetime | None = None,
    seed: int = 7,
    batch: int = 10_000,
) -> int:
    """Insert ``generate_rows(...)`` into ``store``'s ``usage_raw``; return rows written."""
    written = 0
    chunk: list[tuple] = []
    for row in generate_rows(n, days=days, end=end, seed=seed):
        chunk.append(row)
        if len(chunk) >= batch:
            written += store.insert_rows("usage_raw", chunk, RAW_COLUMNS)
            chunk = []
    written += store.insert_rows("usage_raw", chunk, RAW_COLUMNS)
    return written
