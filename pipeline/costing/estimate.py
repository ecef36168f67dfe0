"""Pre-flight estimate of a chat request: tokens in, tokens out, cost before sending.

:func:`estimate_request` answers the two questions a budget reservation needs:

* **worst case** — the most the request can cost: the prompt's input tokens (for
  an estimated count, inflated by the estimator's documented error band) plus the
  largest output the request allows: ``max_tokens`` if given, else the model's
  maximum output from :data:`MAX_OUTPUT_TOKENS`, never more than the context window
  (from genai-prices' model data) minus the input. A model with neither is refused
  (``UserError``: pass ``max_tokens``) rather than guessed.
* **expected** — a planning figure: the input count plus ``expected_output_tokens``
  if given, else :data:`DEFAULT_EXPECTED_OUTPUT_TOKENS` (1024; 4096 for reasoning
  models, whose hidden reasoning is billed as output), capped at the worst case.

Both assume no prompt-cache hits (cache reads only lower the bill, so the worst case
stays an upper bound). Costs are ``Decimal`` USD from
:class:`~pipeline.costing.pricing.PriceCatalog` at ``at`` (default: now, UTC). An
unpriced model gives ``priced=False`` and costs ``None`` with the catalog's reason —
never a silent $0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipeline.costing.pricing import PriceCatalog
from pipeline.costing.tokens import (
    FAMILY_ERROR,
    count_messages,
    model_family,
    normalize_model,
)
from pipeline.costing.usage import TokenUsage
from pipeline.errors import UserError

__all__ = [
    "DEFAULT_EXPECTED_OUTPUT_TOKENS",
    "MAX_OUTPUT_TOKENS",
    "PreflightEstimate",
    "context_window",
    "estimate_request",
    "max_output_tokens",
]

#: Maximum output tokens per model (provider documentation), matched by the longest
#: prefix of the normalised model id. Dated snapshots inherit their base's limit
#: except where listed.
MAX_OUTPUT_TOKENS: Mapping[str, int] = {
    # OpenAI
    "gpt-3.5-turbo": 4096,
    "gpt-4": 8192,
    "gpt-4-32k": 32768,
    "gpt-4-turbo": 4096,
    "gpt-4-1106-preview": 4096,
    "gpt-4-0125-preview": 4096,
    "gpt-4o": 16384,
    "gpt-4o-2024-05-13": 4096,
    "gpt-4o-mini": 16384,
    "chatgpt-4o": 16384,
    "gpt-4.1": 32768,
    "gpt-4.5": 16384,
    "gpt-5": 128000,
    "gpt-5-chat": 16384,
    "o1": 100000,
    "o1-mini": 65536,
    "o1-preview": 32768,
    "o3": 100000,
    "o3-mini": 100000,
    "o4-mini": 100000,
    # Anthropic
    "claude-3-haiku": 4096,
    "claude-3-sonnet": 4096,
    "claude-3-opus": 4096,
    "claude-3-5-sonnet": 8192,
    "claude-3-5-haiku": 8192,
    "claude-3-7-sonnet": 64000,
    "claude-sonnet-4": 64000,
    "claude-opus-4": 32000,
    "claude-opus-4-5": 64000,
    "claude-haiku-4-5": 64000,
    # Google
    "gemini-1.5": 8192,
    "gemini-2.0": 8192,
    "gemini-2.5": 65536,
}

#: Expected output when the caller gives none: a typical chat answer; reasoning
#: models bill hidden reasoning as output, so they get more.
DEFAULT_EXPECTED_OUTPUT_TOKENS = 1024
DEFAULT_EXPECTED_OUTPUT_TOKENS_REASONING = 4096
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")

#: Inflation of an inexact OpenAI count (tool definitions, images) in the worst case.
_OPENAI_APPROX_ERROR = 0.05


@dataclass(frozen=True)
class PreflightEstimate:
    """What a request will (worst case) and probably (expected) consume and cost."""

    model: str
    input_tokens: int
    input_exact: bool
    input_method: str
    worst_case_input_tokens: int
    worst_case_output_tokens: int
    output_limit_source: str  # "max_tokens" | "model_table" | "context_window"
    expected_output_tokens: int
    priced: bool
    worst_case_cost_usd: Decimal | None
    expected_cost_usd: Decimal | None
    price_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; Decimal costs as strings so no precision is lost."""
        d = dict(self.__dict__)
        for key in ("worst_case_cost_usd", "expected_cost_usd"):
            d[key] = None if d[key] is None else str(d[key])
        return d


def _lookup_prefix(table: Mapping[str, int], model: str) -> int | None:
    best: str | None = None
    for prefix in table:
        if model.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return table[best] if best is not None else None


def max_output_tokens(model: str) -> int | None:
    """The model's maximum output tokens from :data:`MAX_OUTPUT_TOKENS`, or ``None``."""
    return _lookup_prefix(MAX_OUTPUT_TOKENS, normalize_model(model))


def context_window(model: str, provider: str | None = None) -> int | None:
    """Context window from genai-prices' bundled model data, or ``None`` if unknown."""
    try:
        from genai_prices.data_snapshot import get_snapshot

        _, info = get_snapshot().find_provider_model(normalize_model(model), None, provider, None)
    except (LookupError, ImportError):
        return None
    return info.context_window


def estimate_request(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    max_tokens: int | None = None,
    provider: str | None = None,
    catalog: PriceCatalog | None = None,
    at: datetime | None = None,
    expected_output_tokens: int | None = None,
) -> PreflightEstimate:
    """Estimate input/output tokens and worst-case/expected cost (module docstring)."""
    if max_tokens is not None and max_tokens < 1:
        raise UserError(f"max_tokens: must be a positive integer, got {max_tokens}")
    if expected_output_tokens is not None and expected_output_tokens < 0:
        raise UserError(
            f"expected_output_tokens: must not be negative, got {expected_output_tokens}"
        )
    count = count_messages(messages, model, tools)
    family = model_family(model)
    if count.exact:
        worst_in = count.tokens
    else:
        err = _OPENAI_APPROX_ERROR if family == "openai" else FAMILY_ERROR[family]
        worst_in = math.ceil(count.tokens * (1 + err))

    window = context_window(model, provider)
    room = None if window is None else max(0, window - count.tokens)
    if max_tokens is not None:
        worst_out, source = max_tokens, "max_tokens"
    else:
        table = max_output_tokens(model)
        if table is not None:
            worst_out, source = table, "model_table"
        elif room is not None:
            worst_out, source = room, "context_window"
        else:
            raise UserError(
                f"model {model!r}: maximum output tokens unknown; pass max_tokens "
                "to bound the worst case"
            )
    if room is not None and room < worst_out:
        worst_out, source = room, "context_window"

    if expected_output_tokens is None:
        reasoning = normalize_model(model).startswith(_REASONING_PREFIXES)
        expected_output_tokens = (
            DEFAULT_EXPECTED_OUTPUT_TOKENS_REASONING
            if reasoning
            else DEFAULT_EXPECTED_OUTPUT_TOKENS
        )
    expected_out = min(expected_output_tokens, worst_out)

    catalog = catalog if catalog is not None else PriceCatalog()
    at = at if at is not None else datetime.now(UTC)
    worst = catalog.price(model, TokenUsage(worst_in, worst_out), at, provider=provider)
    expected = catalog.price(model, TokenUsage(count.tokens, expected_out), at, provider=provider)
    priced = worst.priced and expected.priced
    return PreflightEstimate(
        model=model,
        input_tokens=count.tokens,
        input_exact=count.exact,
        input_method=count.method,
        worst_case_input_tokens=worst_in,
        worst_case_output_tokens=worst_out,
        output_limit_source=source,
        expected_output_tokens=expected_out,
        priced=priced,
        worst_case_cost_usd=worst.cost_usd if priced else None,
        expected_cost_usd=expected.cost_usd if priced else None,
        price_reason=None if priced else (worst.reason or expected.reason or "not priced"),
    )
