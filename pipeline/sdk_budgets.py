"""Budget reservations from the app side: ``BudgetClient.reserve`` and ``guard``.

The pre-flight flow the control plane expects:

1. ``reserve`` the call's worst-case estimate (``pipeline.costing.estimate`` gives it)
   against every budget matching the call's dimensions — ``POST /v1/budgets/reserve``;
2. if allowed, make the LLM call;
3. record its usage with ``reservation_id`` = the reservation: the costed event
   settles it (the actual cost replaces the estimate). A reservation never settled
   expires after ``ttl_s``.

``guard`` is that flow as a context manager::

    budgets = BudgetClient("http://127.0.0.1:6066", api_key=KEY)
    with budgets.guard(emitter, model="gpt-4o", estimate_usd=est, tenant="acme") as call:
        response = client.chat.completions.create(...)
        call.record_openai(response)          # usage carries the reservation id

A denial raises ``BudgetDenied`` with the decision (reason, remaining, a cheaper
model that would fit). Network errors raise ``BudgetUnavailable``: whether to fail
open or closed is the caller's policy, not this library's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from pipeline.sdk import Recorder, record_anthropic, record_openai


class BudgetDenied(Exception):
    """The reservation was denied; ``decision`` is the worker's ``ReserveDecision``."""

    def __init__(self, decision: dict[str, Any]) -> None:
        super().__init__(f"budget denied: {decision.get('reason')}")
        self.decision = decision


class BudgetUnavailable(Exception):
    """The worker could not be asked (network error, 5xx)."""


@dataclass
class GuardedCall:
    """An allowed reservation: record the call's usage through it to settle it."""

    reservation_id: str
    decision: dict[str, Any]
    emitter: Recorder
    dims: dict[str, Any] = field(default_factory=dict)
    recorded: bool = False

    def _dims(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {**self.dims, **extra, "reservation_id": self.reservation_id}

    def record(self, event: dict[str, Any]) -> bool:
        """Record a usage event (dict in the UsageEvent shape) for this call."""
        self.recorded = self.emitter.record(
            {**self.dims, **event, "reservation_id": self.reservation_id}
        )
        return self.recorded

    def record_openai(self, response: Any, **dims: Any) -> bool:
        self.recorded = record_openai(self.emitter, response, **self._dims(dims))
        return self.recorded

    def record_anthropic(self, response: Any, **dims: Any) -> bool:
        self.recorded = record_anthropic(self.emitter, response, **self._dims(dims))
        return self.recorded


class BudgetClient:
    """Talks to a worker's ``/v1/budgets/reserve`` (any worker: it routes to the owner)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:6066",
        api_key: str | None = None,
        timeout: float = 2.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def reserve(
        self,
        *,
        model: str,
        estimate_usd: Decimal | str | None = None,
        estimate_tokens: int | None = None,
        request_id: str | None = None,
        ttl_s: int = 120,
        provider: str | None = None,
        **dimensions: str,
    ) -> dict[str, Any]:
        """Ask for a reservation; returns the decision (``allowed``, ``reason``, …)."""
        body: dict[str, Any] = {
            "request_id": request_id or uuid.uuid4().hex,
            "dimensions": dimensions,
            "model": model,
            "ttl_s": ttl_s,
        }
        if estimate_usd is not None:
            body["estimate_usd"] = str(estimate_usd)
        if estimate_tokens is not None:
            body["estimate_tokens"] = estimate_tokens
        if provider:
            body["provider"] = provider
        try:
            r = self._http.post("/v1/budgets/reserve", json=body)
        except httpx.HTTPError as exc:
            raise BudgetUnavailable(f"reserve failed: {exc}") from exc
        if r.status_code >= 500:
            raise BudgetUnavailable(f"reserve answered {r.status_code}: {r.text[:200]}")
        if r.status_code >= 400:
            raise ValueError(f"reserve rejected ({r.status_code}): {r.text[:500]}")
        decision: dict[str, Any] = r.json()
        decision.setdefault("reservation_id", body["request_id"])
        return decision

    @contextmanager
    def guard(self, emitter: Recorder, *, model: str, **kwargs: Any) -> Iterator[GuardedCall]:
        """Reserve, yield for the call, and let the caller record usage through it."""
        dims = {
            k: v
            for k, v in kwargs.items()
            if k in ("tenant", "team", "user", "feature", "api_key_id")
        }
        decision = self.reserve(model=model, **kwargs)
        if not decision.get("allowed"):
            raise BudgetDenied(decision)
        yield GuardedCall(decision["reservation_id"], decision, emitter, {**dims, "model": model})

    def close(self) -> None:
        self._http.close()
