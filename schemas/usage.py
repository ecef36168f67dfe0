"""Usage event contracts: ``UsageEvent`` v1 (what apps emit) and ``CostedUsage`` (priced).

Token convention (one meaning everywhere, as OpenTelemetry GenAI and genai-prices
define it): ``input_tokens`` is the TOTAL input, INCLUDING ``cache_read_tokens`` and
``cache_write_tokens``; ``output_tokens`` INCLUDES ``reasoning_tokens``. The part
counts are never added on top of the totals; the validator rejects parts larger
than their total, which is how the double-counting bug shows up in practice.

Unknown top-level fields are not dropped: they are moved into ``attributes``
(non-string values JSON-encoded), so a producer on a newer schema loses nothing.
Money is ``Decimal`` (serialised as a JSON string); timestamps are timezone-aware
and normalised to UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1


def wire_ts(ts: datetime) -> str:
    """A timestamp as every tokenpipe message carries it: UTC, milliseconds, ``Z``.

    Milliseconds are what ClickHouse keeps (``DateTime64(3)``); one fixed form lets
    consumers compare the strings and parse them without surprises.
    """
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_wire_ts(value: str) -> datetime:
    """The inverse of ``wire_ts`` (also accepts any ISO-8601 time with an offset)."""
    return datetime.fromisoformat(value)


TokenCount = Annotated[int, Field(ge=0, le=2**53, strict=True)]
"""A token count: a JSON integer >= 0 (no floats, strings or booleans)."""

Dimension = Annotated[str, Field(max_length=256)]
Money = Annotated[Decimal, Field(max_digits=18, decimal_places=9)]


class UsageEvent(BaseModel):
    """One LLM call's usage, as emitted by an app. Contract v1 (``schemas/jsonschema``)."""

    model_config = ConfigDict(extra="allow", frozen=False, str_strip_whitespace=True)

    schema_version: Literal[1] = Field(default=1, description="Contract version.")
    event_id: str = Field(
        min_length=1, max_length=128, description="Idempotency key: UUID or client string."
    )
    ts: AwareDatetime = Field(description="When the call finished; timezone required; kept in UTC.")
    tenant: str = Field(
        min_length=1, max_length=256, description="Customer / org the call bills to."
    )
    user: Dimension = Field(default="", description="End user (OTel: enduser.id).")
    team: Dimension = Field(default="", description="Team owning the calling app.")
    feature: Dimension = Field(default="", description="Product feature that made the call.")
    api_key_id: Dimension = Field(
        default="", description="Id (not the secret) of the API key used."
    )
    provider: Dimension = Field(
        default="", description="gen_ai.system, e.g. openai, anthropic, google; empty: inferred."
    )
    model: str = Field(
        min_length=1, max_length=256, description="gen_ai.request.model / response model."
    )
    input_tokens: TokenCount = Field(
        description="Total input tokens INCLUDING cache reads and writes."
    )
    output_tokens: TokenCount = Field(description="Total output tokens INCLUDING reasoning tokens.")
    cache_read_tokens: TokenCount = Field(default=0, description="Part of input read from cache.")
    cache_write_tokens: TokenCount = Field(default=0, description="Part of input written to cache.")
    reasoning_tokens: TokenCount = Field(default=0, description="Part of output spent reasoning.")
    request_id: str | None = Field(default=None, max_length=256, description="Provider request id.")
    reservation_id: str | None = Field(
        default=None, max_length=128, description="Budget reservation this call settles."
    )
    latency_ms: Annotated[int, Field(ge=0, le=2**32 - 1, strict=True)] | None = Field(
        default=None, description="Call latency in milliseconds."
    )
    status: Literal["ok", "error"] = Field(default="ok", description="Outcome of the call.")
    attributes: dict[str, str] = Field(
        default_factory=dict,
        description="Free-form string tags; unknown top-level fields land here.",
    )

    @field_validator("ts")
    @classmethod
    def _to_utc(cls, v: datetime) -> datetime:
        return v.astimezone(UTC)

    @field_serializer("ts", when_used="json")
    def _ts_json(self, v: datetime) -> str:
        return wire_ts(v)

    @model_validator(mode="after")
    def _parts_within_totals_and_keep_extras(self) -> UsageEvent:
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                "cache_read_tokens + cache_write_tokens exceed input_tokens "
                "(input_tokens must INCLUDE cached tokens)"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(
                "reasoning_tokens exceed output_tokens (output_tokens must INCLUDE reasoning)"
            )
        extra = self.__pydantic_extra__
        if extra:
            for key, value in extra.items():
                target = key if key not in self.attributes else f"_extra.{key}"
                self.attributes[target] = value if isinstance(value, str) else json.dumps(value)
            extra.clear()
        return self


class CostedUsage(UsageEvent):
    """A ``UsageEvent`` priced from the catalog. ``priced=False`` means unknown price, not $0."""

    model_config = ConfigDict(extra="forbid")

    cost_usd: Money = Field(description="Total cost in USD (sum of the parts).")
    input_cost_usd: Money = Field(default=Decimal(0), description="Uncached input part.")
    cache_read_cost_usd: Money = Field(default=Decimal(0), description="Cache-read part.")
    cache_write_cost_usd: Money = Field(default=Decimal(0), description="Cache-write part.")
    output_cost_usd: Money = Field(default=Decimal(0), description="Output part (incl. reasoning).")
    priced: bool = Field(description="False when no price was found; cost is then 0 and unknown.")
    price_source: str = Field(default="", description="genai-prices | override | none.")
    price_version: str = Field(default="", description="Catalog snapshot or overrides hash used.")
    unpriced_reason: str | None = Field(default=None, description="Why priced is false.")
    costed_at: AwareDatetime = Field(description="When the costing processor priced it (UTC).")


def event_fields() -> tuple[str, ...]:
    """The declared top-level fields of ``UsageEvent`` (used by producers and the sink)."""
    return tuple(UsageEvent.model_fields)


def costed_to_row(c: CostedUsage) -> dict[str, Any]:
    """Flatten a ``CostedUsage`` into the ``usage_raw`` column names and types."""
    return {
        "event_id": c.event_id,
        "ts": c.ts,
        "tenant": c.tenant,
        "user": c.user,
        "team": c.team,
        "feature": c.feature,
        "api_key_id": c.api_key_id,
        "provider": c.provider,
        "model": c.model,
        "input_tokens": c.input_tokens,
        "output_tokens": c.output_tokens,
        "cache_read_tokens": c.cache_read_tokens,
        "cache_write_tokens": c.cache_write_tokens,
        "reasoning_tokens": c.reasoning_tokens,
        "cost_usd": c.cost_usd,
        "input_cost_usd": c.input_cost_usd,
        "cache_read_cost_usd": c.cache_read_cost_usd,
        "cache_write_cost_usd": c.cache_write_cost_usd,
        "output_cost_usd": c.output_cost_usd,
        "priced": c.priced,
        "price_source": c.price_source,
        "price_version": c.price_version,
        "request_id": c.request_id or "",
        "reservation_id": c.reservation_id or "",
        "latency_ms": c.latency_ms or 0,
        "status": c.status,
        "attributes": c.attributes,
    }
