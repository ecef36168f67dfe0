"""Budget contracts: definitions, pre-flight reservations, decisions, status and alerts.

A budget is (scope, period, limit in USD *or* tokens, thresholds, hard|soft mode).
The behaviour lives in :mod:`pipeline.budgets`; these are the shapes that cross a
boundary (config files, the reserve endpoint, the alert topic, dashboards).

* ``scope`` is a map of dimension → value over ``tenant``, ``team``, ``user``,
  ``feature``, ``api_key_id`` and ``model``; a budget applies to an event when EVERY
  scope dimension equals the event's (``{"tenant": "acme", "model": "gpt-4o"}``).
* ``period`` is a calendar period in UTC (``hour``, ``day``, ISO ``week`` starting
  Monday 00:00, calendar ``month``) or ``rolling`` with ``rolling_days`` N: the last
  N whole UTC days including today (see :mod:`pipeline.budgets.periods`).
* Thresholds are integer percents of the limit; each fires one :class:`Alert` per
  period. ``emergency_threshold`` is one more threshold whose alert is flagged
  ``emergency`` (e.g. 98: page someone before the hard stop at 100).

Money is ``Decimal`` (a JSON string, never a float); timestamps are aware, in UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from schemas.usage import Money

ScopeDimension = Literal["tenant", "team", "user", "feature", "api_key_id", "model"]
"""The event dimensions a budget can be scoped by."""

SCOPE_DIMENSIONS: tuple[str, ...] = ("tenant", "team", "user", "feature", "api_key_id", "model")

Period = Literal["hour", "day", "week", "month", "rolling"]
Mode = Literal["hard", "soft"]
Unit = Literal["usd", "tokens"]

Percent = Annotated[int, Field(ge=1, le=1000, strict=True)]
PositiveMoney = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=9)]
PositiveCount = Annotated[int, Field(gt=0, le=2**53, strict=True)]
BudgetId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]

DEFAULT_THRESHOLDS: tuple[int, ...] = (50, 75, 90, 100)

#: Namespace of the deterministic alert ids (uuid5).
ALERT_NAMESPACE = uuid.UUID("6f1c8a52-54c5-4c4e-9d0e-0b7d9e3a1f21")

DenyReason = Literal[
    "budget_exceeded",
    "per_request_cap",
    "rate_limit_requests",
    "rate_limit_tokens",
    "estimate_missing",
]


class BudgetDefinition(BaseModel):
    """One budget. Exactly one of ``limit_usd`` / ``limit_tokens``; ``rolling_days`` iff rolling.

    Token budgets count ``input_tokens + output_tokens`` of each costed event (cache
    reads/writes are inside input, reasoning inside output: never added twice).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: BudgetId = Field(description="Stable id; the ledger key. Letters, digits, _ . : -")
    name: str = Field(default="", max_length=256, description="Human-readable name.")
    scope: dict[ScopeDimension, Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        description="Dimension → value; the budget applies when every one equals the event's."
    )
    period: Period = Field(description="hour | day | week (ISO, Monday) | month | rolling (UTC).")
    rolling_days: Annotated[int, Field(ge=1, le=366, strict=True)] | None = Field(
        default=None, description="Window length in whole UTC days; required iff period=rolling."
    )
    limit_usd: PositiveMoney | None = Field(default=None, description="Spend limit in USD.")
    limit_tokens: PositiveCount | None = Field(default=None, description="Token limit.")
    thresholds: list[Percent] = Field(
        default_factory=lambda: list(DEFAULT_THRESHOLDS),
        description="Percents of the limit that fire one alert each per period.",
    )
    emergency_threshold: Percent | None = Field(
        default=None, description="An extra threshold whose alert is flagged emergency."
    )
    mode: Mode = Field(default="hard", description="hard: deny over limit; soft: allow, flag.")
    per_request_cap_usd: PositiveMoney | None = Field(
        default=None, description="Largest estimate a single request may reserve (USD)."
    )
    max_requests_per_minute: PositiveCount | None = Field(
        default=None, description="Admitted reservations per UTC minute."
    )
    max_tokens_per_minute: PositiveCount | None = Field(
        default=None, description="Estimated (then actual) tokens per UTC minute."
    )

    @field_validator("scope")
    @classmethod
    def _scope_not_empty(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError(
                "scope needs at least one dimension (" + ", ".join(SCOPE_DIMENSIONS) + ")"
            )
        return v

    @field_validator("thresholds")
    @classmethod
    def _thresholds_unique_sorted(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("thresholds must not repeat a percent")
        return sorted(v)

    @model_validator(mode="after")
    def _cross_field(self) -> BudgetDefinition:
        if (self.limit_usd is None) == (self.limit_tokens is None):
            raise ValueError("give exactly one of limit_usd and limit_tokens")
        if self.period == "rolling" and self.rolling_days is None:
            raise ValueError("rolling_days is required when period is 'rolling'")
        if self.period != "rolling" and self.rolling_days is not None:
            raise ValueError(f"rolling_days only applies to period 'rolling', not {self.period!r}")
        return self

    @property
    def unit(self) -> Unit:
        """``usd`` or ``tokens``: what ``limit`` and every amount of this budget count."""
        return "usd" if self.limit_usd is not None else "tokens"

    @property
    def limit(self) -> Decimal:
        """The limit as a ``Decimal`` in :attr:`unit` (tokens are integral)."""
        if self.limit_usd is not None:
            return self.limit_usd
        assert self.limit_tokens is not None
        return Decimal(self.limit_tokens)

    @property
    def all_thresholds(self) -> tuple[int, ...]:
        """The thresholds plus the emergency one, ascending, without repeats."""
        extra = {self.emergency_threshold} if self.emergency_threshold is not None else set()
        return tuple(sorted(set(self.thresholds) | extra))


class ReserveRequest(BaseModel):
    """A pre-flight reservation request for one LLM call.

    ``request_id`` is the idempotency key AND the reservation id: a retried reserve
    returns the existing reservation, and the costed event of the call settles it
    through ``reservation_id == request_id``. USD budgets need ``estimate_usd``;
    token budgets and ``max_tokens_per_minute`` use ``estimate_tokens`` (defaults to
    ``input_tokens + output_tokens`` when those are given). ``input_tokens`` and
    ``output_tokens`` also let a denial suggest a cheaper model for the same tokens.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    request_id: str = Field(min_length=1, max_length=128, description="Idempotency key.")
    dimensions: dict[ScopeDimension, Annotated[str, Field(max_length=256)]] = Field(
        description="The call's tenant/team/user/feature/api_key_id (model: see `model`)."
    )
    model: str = Field(min_length=1, max_length=256)
    provider: str | None = Field(default=None, max_length=256)
    estimate_usd: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=9)] | None = None
    estimate_tokens: Annotated[int, Field(ge=0, le=2**53, strict=True)] | None = None
    input_tokens: Annotated[int, Field(ge=0, le=2**53, strict=True)] | None = None
    output_tokens: Annotated[int, Field(ge=0, le=2**53, strict=True)] | None = None
    ttl_s: Annotated[int, Field(ge=1, le=86_400, strict=True)] = Field(
        default=120, description="Seconds before an unsettled reservation expires."
    )

    @model_validator(mode="after")
    def _estimates(self) -> ReserveRequest:
        if (
            self.estimate_tokens is None
            and self.input_tokens is not None
            and self.output_tokens is not None
        ):
            object.__setattr__(self, "estimate_tokens", self.input_tokens + self.output_tokens)
        if self.estimate_usd is None and self.estimate_tokens is None:
            raise ValueError("give estimate_usd or estimate_tokens (or input_ and output_tokens)")
        return self

    def scope_dimensions(self) -> dict[str, str]:
        """The dimensions budgets are matched on: ``dimensions`` plus ``model``."""
        dims: dict[str, str] = {k: v for k, v in self.dimensions.items()}
        dims["model"] = self.model
        return dims


class ModelSuggestion(BaseModel):
    """A cheaper model whose cost for the same tokens fits what the budget can still admit."""

    model_config = ConfigDict(frozen=True)

    model: str
    provider: str
    estimate_usd: Money
    saves_usd: Money = Field(description="Original estimate minus this one.")


class Reservation(BaseModel):
    """An admitted reservation: held in each listed budget's ledger until settled/expired."""

    model_config = ConfigDict(frozen=True)

    reservation_id: str
    budget_ids: list[str]
    amount_usd: Money | None = None
    amount_tokens: int | None = None
    expires_at: AwareDatetime


class ReserveDecision(BaseModel):
    """The answer to a :class:`ReserveRequest` (for one budget, or combined over several).

    ``remaining`` maps budget id → limit − spent − reserved AFTER this reservation,
    in the budget's unit (USD, or tokens as an integral Decimal); negative when a
    soft budget is over. ``warnings`` lists what a soft budget let through.
    ``max_affordable_usd`` is the largest USD estimate the budgets would have
    admitted (``None``: no USD constraint), used to pick a ``suggestion``.
    """

    model_config = ConfigDict(frozen=True)

    allowed: bool
    reason: DenyReason | Literal["ok", "already_reserved", "already_settled"]
    remaining: dict[str, Decimal] = Field(default_factory=dict)
    reservation_id: str | None = None
    expires_at: AwareDatetime | None = None
    budget_ids: list[str] = Field(default_factory=list)
    warnings: list[DenyReason] = Field(default_factory=list)
    max_affordable_usd: Decimal | None = None
    suggestion: ModelSuggestion | None = None


class BudgetState(BaseModel):
    """A budget's status at ``as_of``: the read model of the ledger (API, dashboards)."""

    model_config = ConfigDict(frozen=True)

    budget_id: str
    unit: Unit
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    remaining: Decimal = Field(description="limit − spent − reserved (negative when over).")
    percent: Decimal = Field(description="spent / limit × 100, 2 decimal places.")
    period_start: AwareDatetime
    period_end: AwareDatetime
    fired_thresholds: list[int]
    open_reservations: int
    as_of: AwareDatetime


def alert_id(budget_id: str, period_start: datetime, threshold: int) -> str:
    """Deterministic alert id: the same crossing always gets the same id (replays dedup)."""
    key = f"{budget_id}|{period_start.astimezone(UTC).isoformat()}|{threshold}"
    return str(uuid.uuid5(ALERT_NAMESPACE, key))


class Alert(BaseModel):
    """A budget threshold crossing. One per (budget, period, threshold); id is deterministic.

    ``ts`` is the timestamp of the costed event that crossed the threshold, so a
    re-emitted alert is byte-identical to the first one.
    """

    model_config = ConfigDict(frozen=True)

    alert_id: str
    kind: Literal["budget_threshold"] = "budget_threshold"
    budget_id: str
    threshold: int
    emergency: bool = False
    period_start: AwareDatetime
    spent: Decimal
    limit: Decimal
    unit: Unit
    mode: Mode
    event_id: str = Field(description="The costed event that crossed the threshold.")
    ts: AwareDatetime
