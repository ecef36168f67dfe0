"""Price token usage: the genai-prices catalog plus local overrides, fast enough for streams.

Contract
--------
* Token counts follow the canonical convention of :mod:`pipeline.costing.usage`
  (cache tokens inside ``input_tokens``, reasoning inside ``output_tokens``).
* The price used is the one in force at the event's timestamp ``at`` (tz-aware):
  genai-prices' dated prices (``StartDateConstraint``, which switches at 00:00 UTC of
  the start date), time-of-day prices, and ``valid_from`` in the overrides file.
* Tiered prices ("long context": Gemini 2.5 Pro, Claude Sonnet 4.5 above 200k input
  tokens) use genai-prices' rule: when the TOTAL input (cache included) is above a
  tier's start, that tier's rate applies to ALL tokens of the call, every part.
* Cache reads / writes are priced at the model's cache rates; a model without a cache
  read (or write) price bills those tokens at its input rate, as genai-prices does.
  Reasoning tokens are billed at the output rate unless the catalog has a separate
  reasoning rate. ``reasoning_cost_usd`` is the share of ``output_cost_usd`` due to
  reasoning (informational, never added to ``cost_usd`` again).
* Money is ``Decimal``. The exact cost is computed with a private 60-digit context
  and rounded half-even to 9 decimal places (ClickHouse ``Decimal(18, 9)``).
  ``cost_usd`` is the exact total rounded once; each part is rounded on its own, so
  the parts may differ from the total by a few nano-dollars.
* An unknown provider or model, or a usage the catalog has no rate for (e.g. output
  tokens of a model with no output price), gives ``priced=False``, cost 0 and a
  ``reason``; it is never a silent $0 with ``priced=True``.

Speed: :meth:`PriceCatalog.price_many` resolves each distinct (model, provider) once
(aliases, overrides, catalog match) and compiles every price period of it into
per-token Decimal rates, so the per-usage work is a dict lookup, at most a bisect on
the timestamp and a handful of Decimal multiplications.
"""

from __future__ import annotations

import bisect
import gc
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from pathlib import Path
from typing import Any

import genai_prices
from genai_prices import data_snapshot
from genai_prices import types as gp

from pipeline.costing.overrides import (
    CustomModel,
    Discount,
    OverridePrice,
    Overrides,
    load_overrides,
)
from pipeline.costing.usage import TokenUsage
from pipeline.errors import ConfigError, UserError

__all__ = ["SOURCE_CATALOG", "SOURCE_OVERRIDE", "ModelInfo", "PriceCatalog", "PriceResult"]

SOURCE_CATALOG = "genai-prices"
SOURCE_OVERRIDE = "override"

# Private context: results must not depend on whatever decimal context the caller set.
_CTX = Context(prec=60, rounding=ROUND_HALF_EVEN)
_NANO = Decimal("0.000000001")
ZERO = Decimal("0.000000000")
_MILLION = Decimal(1_000_000)
_THOUSAND = Decimal(1_000)
_EPOCH_START = datetime(1900, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PriceResult:
    """The cost of one usage. All money in USD, ``Decimal`` with 9 decimal places.

    ``cost_usd`` = input + cache_read + cache_write + output (+ request fee) costs;
    ``reasoning_cost_usd`` is inside ``output_cost_usd``. When ``priced`` is false
    every amount is 0 and ``reason`` says why.
    """

    priced: bool
    cost_usd: Decimal
    input_cost_usd: Decimal  # uncached input tokens only
    cache_read_cost_usd: Decimal
    cache_write_cost_usd: Decimal
    output_cost_usd: Decimal  # reasoning included
    reasoning_cost_usd: Decimal  # informational part of output_cost_usd
    provider: str
    model: str
    price_source: str
    price_version: str
    reason: str | None = None
    request_cost_usd: Decimal = ZERO  # per-request fees (e.g. Perplexity), inside cost_usd


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One row of the price list: USD per million tokens in force at listing time."""

    provider: str
    model: str
    name: str | None
    input_mtok: Decimal | None
    cache_read_mtok: Decimal | None
    cache_write_mtok: Decimal | None
    output_mtok: Decimal | None
    reasoning_mtok: Decimal | None
    tiered: bool
    dated: bool  # the price changes over time (history or announced change)
    price_source: str


@dataclass(frozen=True, slots=True)
class _Rates:
    """USD per token for each part (defaults already filled in)."""

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    reasoning_separate: bool


@dataclass(frozen=True, slots=True)
class _Price:
    """A compiled price: base rates and tiers (descending start; applies when input > start)."""

    base: _Rates
    tiers: tuple[tuple[int, _Rates], ...]
    request_fee: Decimal
    has_input: bool
    has_output: bool
    source: str
    version: str
    # USD per million tokens at the base tier, for listings: input, cache_read,
    # cache_write, output, reasoning (None = no specific price).
    mtok: tuple[Decimal | None, ...]


@dataclass(slots=True)
class _Entry:
    """A resolved (provider, model): its price periods, split at ``boundaries`` (epoch s)."""

    provider: str
    model: str
    boundaries: list[float]
    prices: list[_Price | str]  # str = reason the usage cannot be priced in that period
    dynamic: Callable[[datetime], _Price | str] | None = None
    unpriced: dict[str, PriceResult] = field(default_factory=dict)


def _mtok(value: Decimal) -> Decimal:
    return _CTX.divide(value, _MILLION)


def _tier_value(value: Decimal | gp.TieredPrices | None, input_tokens: int) -> Decimal | None:
    """genai-prices' tier rule (``calc_unit_price``): the highest tier whose start < input."""
    if value is None or isinstance(value, Decimal):
        return value
    for tier in reversed(value.tiers):
        if input_tokens > tier.start:
            return tier.price
    return value.base


def _rates(
    input_mtok: Decimal | None,
    cache_read_mtok: Decimal | None,
    cache_write_mtok: Decimal | None,
    output_mtok: Decimal | None,
    reasoning_mtok: Decimal | None,
    multiplier: Decimal,
) -> _Rates:
    inp = _CTX.multiply(_mtok(input_mtok or Decimal(0)), multiplier)
    out = _CTX.multiply(_mtok(output_mtok or Decimal(0)), multiplier)

    def part(value: Decimal | None, default: Decimal) -> Decimal:
        return default if value is None else _CTX.multiply(_mtok(value), multiplier)

    return _Rates(
        input=inp,
        cache_read=part(cache_read_mtok, inp),
        cache_write=part(cache_write_mtok, inp),
        output=out,
        reasoning=part(reasoning_mtok, out),
        reasoning_separate=reasoning_mtok is not None,
    )


_CATALOG_KEYS = (
    "input_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "output_mtok",
    "output_reasoning_mtok",
)


def _compile_catalog(mp: gp.ModelPrice, multiplier: Decimal, source: str, version: str) -> _Price:
    values: list[Decimal | gp.TieredPrices | None] = [getattr(mp, k, None) for k in _CATALOG_KEYS]
    starts = sorted(
        {t.start for v in values if isinstance(v, gp.TieredPrices) for t in v.tiers}, reverse=True
    )

    def at(input_tokens: int) -> _Rates:
        vals = [_tier_value(v, input_tokens) for v in values]
        return _rates(vals[0], vals[1], vals[2], vals[3], vals[4], multiplier)

    requests = getattr(mp, "requests_kcount", None)
    request_fee = (
        _CTX.multiply(_CTX.divide(requests, _THOUSAND), multiplier)
        if isinstance(requests, Decimal)
        else Decimal(0)
    )
    base_vals = [_tier_value(v, 0) for v in values]
    return _Price(
        base=at(0),
        tiers=tuple((start, at(start + 1)) for start in starts),
        request_fee=request_fee,
        has_input=values[0] is not None,
        has_output=values[3] is not None,
        source=source,
        version=version,
        mtok=tuple(None if v is None else _CTX.multiply(v, multiplier) for v in base_vals),
    )


def _compile_override(op: OverridePrice, multiplier: Decimal, version: str) -> _Price:
    raw = (op.input, op.cache_read, op.cache_write, op.output, op.reasoning)
    return _Price(
        base=_rates(*raw, multiplier),
        tiers=(),
        request_fee=Decimal(0),
        has_input=True,
        has_output=True,
        source=SOURCE_OVERRIDE,
        version=version,
        mtok=tuple(None if v is None else _CTX.multiply(v, multiplier) for v in raw),
    )


def _midnight_utc(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def _load_catalog_file(path: Path) -> list[gp.Provider]:
    """Providers from a genai-prices ``data.json`` (as written by ``tokenpipe prices update``)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, list):
            raise ValueError("expected a JSON list of providers")
        # The same parser genai-prices' own UpdatePrices.fetch() uses for this file.
        return gp._providers_from_raw(raw)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"price catalog file {path}: {exc}") from None


class PriceCatalog:
    """Prices usages from genai-prices' catalog, with local overrides winning.

    ``overrides``: YAML file of aliases, custom model prices and discounts (see
    :mod:`pipeline.costing.overrides`). ``catalog_data``: a genai-prices ``data.json``
    to use instead of the snapshot bundled with the installed package (written by
    ``tokenpipe prices update``). Instances are cheap to query from many threads
    (caches are plain dicts guarded by the GIL) but build one and keep it: it caches.
    """

    def __init__(self, overrides: Path | None = None, *, catalog_data: Path | None = None) -> None:
        if catalog_data is not None:
            providers = _load_catalog_file(catalog_data)
            self._snapshot = data_snapshot.DataSnapshot(providers=providers, from_auto_update=False)
            stamp = datetime.fromtimestamp(catalog_data.stat().st_mtime, UTC).strftime("%Y-%m-%d")
            self._catalog_version = f"genai-prices data {stamp}"
        else:
            self._snapshot = data_snapshot.DataSnapshot(
                providers=data_snapshot.get_snapshot().providers, from_auto_update=False
            )
            self._catalog_version = f"genai-prices {genai_prices.__version__}"
        self._overrides: Overrides | None = load_overrides(overrides) if overrides else None
        self._custom_by_key: dict[tuple[str, str], CustomModel] = {}
        self._custom_by_name: dict[str, list[CustomModel]] = {}
        if self._overrides is not None:
            for cm in self._overrides.models:
                for name in cm.names:
                    self._custom_by_key[(cm.provider, name)] = cm
                    self._custom_by_name.setdefault(name, []).append(cm)
        self._cache: dict[tuple[str, str | None], _Entry | PriceResult] = {}
        self._compiled: dict[tuple[int, int], _Price] = {}
        # Keeps the objects whose id() keys _compiled alive, so an id cannot be reused.
        self._keepalive: list[Any] = []

    # ------------------------------------------------------------------ public API
    @property
    def version(self) -> str:
        """Catalog version, plus the overrides file hash when one is loaded."""
        if self._overrides is None:
            return self._catalog_version
        return f"{self._catalog_version}+{self._overrides.version}"

    def price(
        self, model: str, usage: TokenUsage, at: datetime, provider: str | None = None
    ) -> PriceResult:
        """Cost of ``usage`` of ``model`` (at ``provider``, else inferred) at time ``at``."""
        return self.price_many(((model, provider, usage, at),))[0]

    def price_many(
        self, items: Sequence[tuple[str, str | None, TokenUsage, datetime]]
    ) -> list[PriceResult]:
        """Price many ``(model, provider, usage, at)`` items; same results as :meth:`price`."""
        # A big batch allocates many small objects that form no reference cycles; the
        # cyclic GC would still scan them repeatedly (~25% of the time), so pause it.
        pause_gc = len(items) > 1000 and gc.isenabled()
        if pause_gc:
            gc.disable()
        try:
            with localcontext(_CTX):
                return self._price_many(items)
        finally:
            if pause_gc:
                gc.enable()

    def _price_many(
        self, items: Sequence[tuple[str, str | None, TokenUsage, datetime]]
    ) -> list[PriceResult]:
        cache = self._cache
        out: list[PriceResult] = []
        append = out.append
        for model, provider, usage, at in items:
            if at.tzinfo is None or at.utcoffset() is None:
                raise UserError(f"timestamp {at.isoformat()} has no timezone; give UTC times")
            entry = cache.get((model, provider))
            if entry is None:
                entry = cache[(model, provider)] = self._resolve(model, provider)
            if type(entry) is PriceResult:
                append(entry)
                continue
            assert isinstance(entry, _Entry)
            if entry.dynamic is not None:
                price = entry.dynamic(at)
            elif entry.boundaries:
                price = entry.prices[bisect.bisect_right(entry.boundaries, at.timestamp())]
            else:
                price = entry.prices[0]
            if type(price) is str:
                append(self._unpriced_entry(entry, price))
                continue
            assert isinstance(price, _Price)
            append(_apply(price, usage, entry))
        return out

    def models(self, provider: str | None = None) -> list[ModelInfo]:
        """Models with the prices in force now (overrides and discounts applied)."""
        now = datetime.now(UTC)
        wanted = provider.strip().lower() if provider else None
        rows: list[ModelInfo] = []
        seen: set[tuple[str, str]] = set()
        for cm in self._overrides.models if self._overrides else ():
            if wanted and cm.provider != wanted:
                continue
            entry = self._entry_for(cm.provider, cm.model, None, cm)
            rows.append(self._info(entry, None, now))
            seen.add((cm.provider, cm.model.lower()))
        for prov in self._snapshot.providers:
            if wanted and prov.id != wanted:
                continue
            for mi in prov.models:
                if (prov.id, mi.id.lower()) in seen:
                    continue
                entry = self._entry_for(prov.id, mi.id, mi, None)
                rows.append(self._info(entry, mi, now))
        if wanted and not rows and not self._provider_known(wanted):
            raise UserError(f"unknown provider {provider!r}")
        return rows

    def providers(self) -> list[str]:
        """Provider ids of the catalog and of the overrides' custom models."""
        ids = [p.id for p in self._snapshot.providers]
        extra = {cm.provider for cm in self._overrides.models} if self._overrides else set()
        return ids + sorted(extra - set(ids))

    # ------------------------------------------------------------------ resolution
    def _provider_known(self, provider: str) -> bool:
        customs = self._overrides.models if self._overrides else ()
        if any(cm.provider == provider for cm in customs):
            return True
        try:
            self._snapshot.find_provider(None, provider, None)
        except LookupError:
            return False
        return True

    def _unpriced(self, provider: str, model: str, reason: str) -> PriceResult:
        return PriceResult(
            priced=False,
            cost_usd=ZERO,
            input_cost_usd=ZERO,
            cache_read_cost_usd=ZERO,
            cache_write_cost_usd=ZERO,
            output_cost_usd=ZERO,
            reasoning_cost_usd=ZERO,
            provider=provider,
            model=model,
            price_source="",
            price_version=self.version,
            reason=reason,
        )

    def _unpriced_entry(self, entry: _Entry, reason: str) -> PriceResult:
        result = entry.unpriced.get(reason)
        if result is None:
            result = entry.unpriced[reason] = self._unpriced(entry.provider, entry.model, reason)
        return result

    def _resolve(self, model: str, provider: str | None) -> _Entry | PriceResult:
        if not isinstance(model, str) or not model.strip():
            raise UserError(f"model must be a non-empty string, got {model!r}")
        name = model.strip()
        lname = name.lower()
        prov = provider.strip().lower() if provider and provider.strip() else None
        shown_provider = prov or ""

        if self._overrides is not None and lname in self._overrides.aliases:
            prov, name = self._overrides.aliases[lname]
            lname = name.lower()
            shown_provider = prov

        if prov is not None and not self._provider_known(prov):
            return self._unpriced(prov, name, f"unknown provider {prov!r}")

        if prov is None and "/" in lname:
            # "openai/gpt-4o" style refs: use the prefix as provider when it is one and
            # the rest is a model of it; otherwise match the whole ref (OpenRouter ids).
            prefix, _, rest = lname.partition("/")
            if self._provider_known(prefix) and self._find(prefix, rest)[0] is not None:
                prov, name, lname = prefix, name.partition("/")[2], rest

        found, reason = self._find(prov, lname)
        if found is None:
            return self._unpriced(shown_provider, name, reason or f"unknown model {name!r}")
        prov_id, model_id, info, custom = found
        return self._entry_for(prov_id, model_id, info, custom, lname)

    def _find(
        self, prov: str | None, lname: str
    ) -> tuple[tuple[str, str, gp.ModelInfo | None, CustomModel | None] | None, str | None]:
        custom: CustomModel | None = None
        if prov is not None:
            custom = self._custom_by_key.get((prov, lname))
        else:
            candidates = self._custom_by_name.get(lname, [])
            if len(candidates) > 1:
                provs = ", ".join(sorted(c.provider for c in candidates))
                return None, f"model {lname!r} is defined for several providers ({provs}); give one"
            if candidates:
                custom = candidates[0]
                prov = custom.provider
        info: gp.ModelInfo | None = None
        prov_id = prov
        if prov is not None:
            try:
                prov_obj = self._snapshot.find_provider(None, prov, None)
            except LookupError:
                prov_obj = None
            if prov_obj is not None:
                prov_id = prov_obj.id
                info = prov_obj.find_model(lname, all_providers=self._snapshot.providers)
        else:
            try:
                prov_obj, info = self._snapshot.find_provider_model(lname, None, None, None)
                prov_id = prov_obj.id
            except LookupError:
                info = None
        if custom is None and info is None:
            where = f" for provider {prov!r}" if prov else ""
            return None, f"unknown model {lname!r}{where}"
        assert prov_id is not None
        model_id = custom.model if custom is not None else info.id  # type: ignore[union-attr]
        return (prov_id, model_id, info, custom), None

    def _discounts_for(self, provider: str, names: set[str]) -> list[Discount]:
        if self._overrides is None:
            return []
        return [
            d
            for d in self._overrides.discounts
            if d.provider == provider and (d.model is None or d.model in names)
        ]

    def _entry_for(
        self,
        provider: str,
        model_id: str,
        info: gp.ModelInfo | None,
        custom: CustomModel | None,
        requested: str | None = None,
    ) -> _Entry:
        names = {model_id.lower()}
        if requested:
            names.add(requested)
        if custom is not None:
            names |= custom.names
        discounts = self._discounts_for(provider, names)
        starts: set[datetime] = set()
        dynamic = False
        if info is not None and isinstance(info.prices, list):
            for cp in info.prices:
                if isinstance(cp.constraint, gp.StartDateConstraint):
                    starts.add(_midnight_utc(cp.constraint.start_date))
                elif cp.constraint is not None:
                    dynamic = True  # time-of-day prices: evaluate at each usage's time
        if custom is not None:
            starts |= {p.valid_from for p in custom.prices if p.valid_from is not None}
        starts |= {d.valid_from for d in discounts if d.valid_from is not None}

        def price_at(at: datetime) -> _Price | str:
            return self._price_at(at, provider, model_id, info, custom, discounts)

        if dynamic:
            return _Entry(provider, model_id, [], [], dynamic=price_at)
        ordered = sorted(starts)
        return _Entry(
            provider,
            model_id,
            boundaries=[s.timestamp() for s in ordered],
            prices=[price_at(s) for s in [_EPOCH_START, *ordered]],
        )

    def _price_at(
        self,
        at: datetime,
        provider: str,
        model_id: str,
        info: gp.ModelInfo | None,
        custom: CustomModel | None,
        discounts: list[Discount],
    ) -> _Price | str:
        period: OverridePrice | None = None
        if custom is not None:
            for p in custom.prices:
                if p.valid_from is None or p.valid_from <= at:
                    period = p
        model_price: gp.ModelPrice | None = None
        if period is None:
            if info is None:
                assert custom is not None
                first = custom.prices[0].valid_from
                since = first.isoformat() if first else "?"
                return f"no price for {provider}/{model_id} before {since} (overrides valid_from)"
            model_price = info.get_prices(at)
        # Model-specific discounts win over provider-wide ones; the latest active one counts.
        active = [d for d in discounts if d.valid_from is None or d.valid_from <= at]
        chosen: Discount | None = None
        for d in sorted(active, key=lambda d: (d.model is not None, d.valid_from or _EPOCH_START)):
            chosen = d
        multiplier = chosen.multiplier if chosen is not None else Decimal(1)
        key = (id(period) if period is not None else id(model_price), id(chosen))
        compiled = self._compiled.get(key)
        if compiled is None:
            if period is not None:
                assert self._overrides is not None
                compiled = _compile_override(period, multiplier, self._overrides.version)
            else:
                assert model_price is not None
                if chosen is None:
                    compiled = _compile_catalog(
                        model_price, multiplier, SOURCE_CATALOG, self._catalog_version
                    )
                else:
                    assert self._overrides is not None
                    compiled = _compile_catalog(
                        model_price,
                        multiplier,
                        SOURCE_OVERRIDE,
                        f"{self._catalog_version}+{self._overrides.version}",
                    )
            self._compiled[key] = compiled
            self._keepalive.append((period, model_price, chosen))
        return compiled

    def _info(self, entry: _Entry, info: gp.ModelInfo | None, now: datetime) -> ModelInfo:
        price = (
            entry.dynamic(now)
            if entry.dynamic
            else entry.prices[bisect.bisect_right(entry.boundaries, now.timestamp())]
        )
        dated = bool(entry.boundaries) or entry.dynamic is not None
        name = info.name if info is not None else None
        if isinstance(price, str):
            return ModelInfo(
                entry.provider, entry.model, name, None, None, None, None, None, False, dated, ""
            )
        m = price.mtok
        return ModelInfo(
            provider=entry.provider,
            model=entry.model,
            name=name,
            input_mtok=m[0],
            cache_read_mtok=m[1],
            cache_write_mtok=m[2],
            output_mtok=m[3],
            reasoning_mtok=m[4],
            tiered=bool(price.tiers),
            dated=dated,
            price_source=price.source,
        )


def _new_result(
    priced: bool,
    cost: Decimal,
    c_in: Decimal,
    c_cr: Decimal,
    c_cw: Decimal,
    c_out: Decimal,
    c_rs: Decimal,
    provider: str,
    model: str,
    source: str,
    version: str,
    reason: str | None,
    c_req: Decimal,
    _new: Any = object.__new__,
    _set: Any = object.__setattr__,
) -> PriceResult:
    """``PriceResult(...)`` without the frozen dataclass __init__ overhead (~2x faster).

    The frozen ``__init__`` looks ``object.__setattr__`` up again for every field; on
    the hot path that was a third of the time per usage. Same fields, same object.
    """
    o: PriceResult = _new(PriceResult)
    _set(o, "priced", priced)
    _set(o, "cost_usd", cost)
    _set(o, "input_cost_usd", c_in)
    _set(o, "cache_read_cost_usd", c_cr)
    _set(o, "cache_write_cost_usd", c_cw)
    _set(o, "output_cost_usd", c_out)
    _set(o, "reasoning_cost_usd", c_rs)
    _set(o, "provider", provider)
    _set(o, "model", model)
    _set(o, "price_source", source)
    _set(o, "price_version", version)
    _set(o, "reason", reason)
    _set(o, "request_cost_usd", c_req)
    return o


def _apply(price: _Price, usage: TokenUsage, entry: _Entry) -> PriceResult:
    """The hot path: a few Decimal multiplications for one usage.

    Must run inside ``localcontext(_CTX)``: plain operators then use the private
    60-digit, half-even context (and are faster than ``_CTX.multiply`` calls).
    """
    n_in = usage.input_tokens
    n_out = usage.output_tokens
    if (n_in and not price.has_input) or (n_out and not price.has_output):
        part = "input" if n_in and not price.has_input else "output"
        return PriceResult(
            False,
            ZERO,
            ZERO,
            ZERO,
            ZERO,
            ZERO,
            ZERO,
            entry.provider,
            entry.model,
            price.source,
            price.version,
            f"the catalog has no {part} token price for {entry.provider}/{entry.model}",
        )
    r = price.base
    if price.tiers:
        for start, tier_rates in price.tiers:
            if n_in > start:
                r = tier_rates
                break
    nano = _NANO
    n_cr = usage.cache_read_tokens
    n_cw = usage.cache_write_tokens
    n_rs = usage.reasoning_tokens
    c_in = (n_in - n_cr - n_cw) * r.input
    total = c_in
    if n_cr:
        c_cr = n_cr * r.cache_read
        total += c_cr
        q_cr = c_cr.quantize(nano)
    else:
        q_cr = ZERO
    if n_cw:
        c_cw = n_cw * r.cache_write
        total += c_cw
        q_cw = c_cw.quantize(nano)
    else:
        q_cw = ZERO
    if n_rs:
        c_rs = n_rs * r.reasoning
        c_out = ((n_out - n_rs) * r.output + c_rs) if r.reasoning_separate else n_out * r.output
        q_rs = c_rs.quantize(nano)
    else:
        c_out = n_out * r.output
        q_rs = ZERO
    total += c_out
    q_req = ZERO
    if price.request_fee:
        total += price.request_fee
        q_req = price.request_fee.quantize(nano)
    return _new_result(
        True,
        total.quantize(nano),
        c_in.quantize(nano),
        q_cr,
        q_cw,
        c_out.quantize(nano),
        q_rs,
        entry.provider,
        entry.model,
        price.source,
        price.version,
        None,
        q_req,
    )
