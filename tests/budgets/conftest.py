"""Shared builders for the budget tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.budgets import BudgetDefinition, ReserveRequest
from schemas.usage import CostedUsage

T0 = datetime(2025, 6, 10, 12, 0, 0, tzinfo=UTC)


def budget(**kw: Any) -> BudgetDefinition:
    base: dict[str, Any] = {
        "id": "b1",
        "scope": {"tenant": "acme"},
        "period": "month",
        "limit_usd": Decimal("10"),
    }
    base.update(kw)
    if "limit_tokens" in kw:
        base.pop("limit_usd", None)
    return BudgetDefinition.model_validate(base)


def request(rid: str, usd: str | None = None, tokens: int | None = None, **kw: Any):
    return ReserveRequest(
        request_id=rid,
        dimensions={"tenant": "acme"},
        model=kw.pop("model", "gpt-4o"),
        estimate_usd=None if usd is None else Decimal(usd),
        estimate_tokens=tokens,
        **kw,
    )


def costed(
    eid: str,
    usd: str,
    ts: datetime = T0,
    *,
    reservation_id: str | None = None,
    input_tokens: int = 100,
    output_tokens: int = 50,
    priced: bool = True,
) -> CostedUsage:
    return CostedUsage(
        event_id=eid,
        ts=ts,
        tenant="acme",
        model="gpt-4o",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=Decimal(usd),
        priced=priced,
        reservation_id=reservation_id,
        costed_at=ts,
    )
