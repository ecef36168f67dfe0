"""Suggest a cheaper model when a budget denies a request.

The same tokens are re-priced with :class:`~pipeline.costing.pricing.PriceCatalog`
along a configurable fallback chain (``gpt-4o → gpt-4o-mini``, ``claude-sonnet →
claude-haiku``, ``gemini-pro → gemini-flash`` ...) at the request's time; the first
model that is priced, strictly cheaper than the requested one and fits the allowance
(what the budget can still admit, ``ReserveDecision.max_affordable_usd``) is returned.
Chains are followed transitively (``opus → sonnet → haiku``), each model at most once.

Model ids are matched exactly first, then by their base name: a dated or ``-latest``
snapshot (``gpt-4o-2024-08-06``, ``claude-3-5-sonnet-20241022``) uses the chain of
``gpt-4o`` / ``claude-3-5-sonnet``, but ``gpt-4o-mini`` is NOT ``gpt-4o``.
Token budgets get no suggestion (a cheaper model does not use fewer tokens), and a
request without the ``input_tokens`` / ``output_tokens`` split cannot be re-priced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from pipeline.costing.pricing import PriceCatalog
from pipeline.costing.usage import TokenUsage
from schemas.budgets import ModelSuggestion, ReserveRequest

__all__ = ["DEFAULT_FALLBACKS", "ModelFallback", "fallback_chain", "suggest_cheaper"]

#: model → cheaper alternatives, best first. Override per deployment.
DEFAULT_FALLBACKS: Mapping[str, Sequence[str]] = {
    # OpenAI
    "gpt-4": ("gpt-4o", "gpt-4o-mini"),
    "gpt-4-turbo": ("gpt-4o", "gpt-4o-mini"),
    "gpt-4o": ("gpt-4o-mini",),
    "gpt-4.1": ("gpt-4.1-mini", "gpt-4.1-nano"),
    "gpt-4.1-mini": ("gpt-4.1-nano",),
    "gpt-5": ("gpt-5-mini", "gpt-5-nano"),
    "gpt-5-mini": ("gpt-5-nano",),
    "o1": ("o3-mini", "o4-mini"),
    "o3": ("o4-mini",),
    # Anthropic
    "claude-opus-4": ("claude-sonnet-4",),
    "claude-opus-4-1": ("claude-sonnet-4",),
    "claude-sonnet-4": ("claude-3-5-haiku",),
    "claude-sonnet-4-5": ("claude-haiku-4-5",),
    "claude-3-opus": ("claude-3-5-sonnet",),
    "claude-3-7-sonnet": ("claude-3-5-haiku",),
    "claude-3-5-sonnet": ("claude-3-5-haiku",),
    "claude-3-5-haiku": ("claude-3-haiku",),
    # Google
    "gemini-2.5-pro": ("gemini-2.5-flash", "gemini-2.5-flash-lite"),
    "gemini-2.5-flash": ("gemini-2.5-flash-lite",),
    "gemini-1.5-pro": ("gemini-1.5-flash",),
    "gemini-2.0-flash": ("gemini-2.0-flash-lite",),
}

# A snapshot suffix: -YYYY-MM-DD, -YYYYMMDD, -0613, -latest, @YYYYMMDD (Vertex).
_SNAPSHOT = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-latest|@\d{8}|@latest)")


def _base(model: str, fallbacks: Mapping[str, Sequence[str]]) -> str | None:
    name = model.strip().lower()
    if "/" in name:  # "openai/gpt-4o" refs
        name = name.rsplit("/", 1)[1]
    if name in fallbacks:
        return name
    best: str | None = None
    for key in fallbacks:
        if (
            name.startswith(key)
            and _SNAPSHOT.fullmatch(name[len(key) :])
            and (best is None or len(key) > len(best))
        ):
            best = key
    return best


def fallback_chain(
    model: str, fallbacks: Mapping[str, Sequence[str]] = DEFAULT_FALLBACKS
) -> list[str]:
    """Cheaper alternatives of ``model``, best first, followed transitively, no repeats."""
    out: list[str] = []
    seen = {model.strip().lower()}
    queue = [model]
    while queue:
        base = _base(queue.pop(0), fallbacks)
        if base is None:
            continue
        seen.add(base)
        for alt in fallbacks[base]:
            if alt.lower() not in seen:
                seen.add(alt.lower())
                out.append(alt)
                queue.append(alt)
    return out


def suggest_cheaper(
    catalog: PriceCatalog,
    model: str,
    usage: TokenUsage,
    max_usd: Decimal,
    *,
    at: datetime | None = None,
    provider: str | None = None,
    fallbacks: Mapping[str, Sequence[str]] = DEFAULT_FALLBACKS,
) -> ModelSuggestion | None:
    """The first model of ``model``'s fallback chain whose cost of ``usage`` is <= ``max_usd``.

    It must also be strictly cheaper than ``model`` itself when ``model`` is priced.
    The provider of ``model`` is tried first for each alternative, then inference.
    """
    when = at or datetime.now(UTC)
    original = catalog.price(model, usage, when, provider)
    for alt in fallback_chain(model, fallbacks):
        result = catalog.price(alt, usage, when, provider)
        if not result.priced and provider is not None:
            result = catalog.price(alt, usage, when, None)
        if not result.priced or result.cost_usd > max_usd:
            continue
        if original.priced and result.cost_usd >= original.cost_usd:
            continue
        saves = original.cost_usd - result.cost_usd if original.priced else Decimal(0)
        return ModelSuggestion(
            model=alt, provider=result.provider, estimate_usd=result.cost_usd, saves_usd=saves
        )
    return None


class ModelFallback:
    """A :data:`~pipeline.budgets.ledger.Suggester`: re-prices a request's tokens on cheaper
    models. Build one per worker (the catalog caches) and pass it as ``suggest=``.
    """

    def __init__(
        self,
        catalog: PriceCatalog,
        fallbacks: Mapping[str, Sequence[str]] = DEFAULT_FALLBACKS,
        *,
        clock: type[datetime] = datetime,
    ) -> None:
        self._catalog = catalog
        self._fallbacks = fallbacks
        self._clock = clock

    def __call__(self, request: ReserveRequest, max_usd: Decimal) -> ModelSuggestion | None:
        if request.input_tokens is None or request.output_tokens is None:
            return None
        usage = TokenUsage(input_tokens=request.input_tokens, output_tokens=request.output_tokens)
        return suggest_cheaper(
            self._catalog,
            request.model,
            usage,
            max_usd,
            at=self._clock.now(UTC),
            provider=request.provider,
            fallbacks=self._fallbacks,
        )
