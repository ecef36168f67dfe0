"""Builders of costed records and windows for the alert tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

from pipeline.windows import WindowAgg, WindowKey
from schemas.usage import CostedUsage

T0 = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)  # a Monday, midnight UTC
_ids = count()


def costed(
    ts: datetime,
    *,
    tenant: str = "acme",
    user: str = "u1",
    team: str = "t1",
    feature: str = "chat",
    model: str = "gpt-4o",
    api_key_id: str = "k1",
    input_tokens: int = 100,
    output_tokens: int = 20,
    cache_read_tokens: int = 0,
    reasoning_tokens: int = 0,
    cost_usd: Decimal | str = "0.001",
    priced: bool = True,
) -> CostedUsage:
    return CostedUsage(
        event_id=f"e{next(_ids)}",
        ts=ts,
        tenant=tenant,
        user=user,
        team=team,
        feature=feature,
        api_key_id=api_key_id,
        provider="openai",
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        reasoning_tokens=reasoning_tokens,
        cost_usd=Decimal(cost_usd),
        priced=priced,
        costed_at=ts,
    )


def window(
    start: datetime,
    *,
    tenant: str = "acme",
    feature: str = "chat",
    model: str = "gpt-4o",
    calls: int = 100,
    tokens: int = 50_000,
    cost: Decimal | str = "1.00",
    unpriced_calls: int = 0,
) -> WindowAgg:
    """A closed 1-minute window (tokens split 80/20 input/output)."""
    return WindowAgg(
        key=WindowKey(tenant=tenant, feature=feature, model=model),
        start=start,
        end=start + timedelta(seconds=60),
        calls=calls,
        unpriced_calls=unpriced_calls,
        input_tokens=tokens * 4 // 5,
        output_tokens=tokens - tokens * 4 // 5,
        cost_usd=Decimal(cost),
    )


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)
