"""Spend, token and call anomalies per scope, against a robust, seasonal baseline.

Input: the closed stream windows of ``pipeline.windows`` (pass ALL windows closed
by one ``closed_windows`` call together). They are rolled up per scope (default
``tenant`` and ``tenant+feature``) and each scope window is compared with its
history BEFORE being added to it.

Baseline (per scope and metric, expressed per window):

- ``weekly mean``: total of the last 7 days divided by the number of windows in
  that time (idle windows count as zero), limited to the time since the scope was
  first seen. This is the "weekly average" the default rules speak of.
- ``seasonal median``: the per-window rate of the same hour of day on each of the
  previous 7 days (median of up to 7 values), so a tenant that only works office
  hours is compared with its own office hours, not with its nights.
- ``baseline = max(weekly mean, seasonal median)``. Taking the larger one keeps
  daily peaks quiet while still catching a spike at an unusual hour.

A window is anomalous for a metric when ``value > factor * baseline`` (defaults:
2× for cost and tokens, 3× for calls) AND ``value >= min_value`` (an absolute
floor so 4 calls against a baseline of 1 is not news) AND the scope has at least
``min_history_s`` of history (default 1 day: a brand-new tenant cannot fire) AND
the scope+metric is not in cooldown (default 1 h after its last anomaly, in event
time: a sustained spike gives one anomaly per cooldown, not one per window).

``score`` is a robust z-score of the value against the hourly per-window rates of
the history (median and MAD, scale 1.4826·MAD): informative, not used to decide.

History is kept as hourly sums (at most 7×24+1 buckets per scope), so state stays
small and JSON-able (``to_state`` / ``from_state``).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline.windows import DEFAULT_WINDOW_S, KEY_DIMS, WindowAgg
from schemas.alerts import Anomaly, AnomalyMetric

STATE_VERSION = 1
METRICS: tuple[AnomalyMetric, ...] = ("cost_usd", "tokens", "calls")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_Q = Decimal("0.000000001")
_CAP = 1e6  # ratios and scores are capped so they stay finite JSON numbers


@dataclass(frozen=True, slots=True)
class MetricRule:
    """Fire when ``value > factor * baseline`` and ``value >= min_value``."""

    metric: AnomalyMetric
    factor: Decimal
    min_value: Decimal


DEFAULT_RULES: tuple[MetricRule, ...] = (
    MetricRule("cost_usd", Decimal(2), Decimal("0.01")),
    MetricRule("tokens", Decimal(2), Decimal(10_000)),
    MetricRule("calls", Decimal(3), Decimal(10)),
)


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    """Detector settings; the defaults are the documented default rules."""

    window_s: int = DEFAULT_WINDOW_S
    scopes: tuple[tuple[str, ...], ...] = (("tenant",), ("tenant", "feature"))
    rules: tuple[MetricRule, ...] = DEFAULT_RULES
    horizon_days: int = 7
    min_history_s: int = 86_400
    cooldown_s: int = 3_600
    bucket_s: int = 3_600

    def __post_init__(self) -> None:
        for scope in self.scopes:
            if not scope or scope[0] != "tenant" or any(d not in KEY_DIMS for d in scope):
                raise ValueError(
                    f"anomaly scope {scope!r}: must start with 'tenant' and use only {KEY_DIMS}"
                )
        if self.bucket_s % self.window_s or 86_400 % self.bucket_s:
            raise ValueError("bucket_s must be a multiple of window_s and divide a day")


@dataclass(slots=True)
class _Stats:
    complete_total: Decimal
    seasonal: Decimal | None
    median: float
    scale: float


@dataclass(slots=True)
class _ScopeHistory:
    first_start: int  # epoch seconds of the first window seen
    last_start: int
    buckets: dict[int, list[Decimal]] = field(default_factory=dict)  # hour -> per-metric sums
    last_fired: dict[str, int] = field(default_factory=dict)
    # Not persisted: statistics of the complete hours, valid for one current hour.
    cache_hour: int = -1
    cache: dict[str, _Stats] = field(default_factory=dict)


def _epoch_s(ts: datetime) -> int:
    return int((ts - _EPOCH).total_seconds())


def _values(w: WindowAgg) -> tuple[Decimal, Decimal, Decimal]:
    return w.cost_usd, Decimal(w.total_tokens), Decimal(w.calls)


class AnomalyDetector:
    """Keeps per-scope hourly history and flags anomalous windows. Pure; no clock."""

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        self.config = config or AnomalyConfig()
        self._scopes: dict[str, _ScopeHistory] = {}

    # -- public API ---------------------------------------------------------------------

    def observe(self, windows: Iterable[WindowAgg], detected_at: datetime) -> list[Anomaly]:
        """Roll ``windows`` up per scope, evaluate each scope window, then record it.

        A scope window at or before one already seen for that scope is recorded
        but not evaluated (it can only be a straggler).
        """
        rolled: dict[tuple[int, str], list[Decimal]] = {}
        for w in windows:
            start = _epoch_s(w.start)
            wvals = _values(w)
            dims = w.key.as_dict()
            for scope in self.config.scopes:
                skey = json.dumps({d: dims[d] for d in scope}, sort_keys=True)
                acc = rolled.setdefault((start, skey), [Decimal(0)] * len(METRICS))
                for i, v in enumerate(wvals):
                    acc[i] += v
        out: list[Anomaly] = []
        for (start, skey), vals in sorted(rolled.items()):
            hist = self._scopes.get(skey)
            if hist is None:
                hist = self._scopes[skey] = _ScopeHistory(first_start=start, last_start=start)
            elif start > hist.last_start:
                out.extend(self._evaluate(skey, hist, start, vals, detected_at))
            self._record(hist, start, vals)
        return out

    def baseline(
        self, scope: dict[str, str], metric: AnomalyMetric, at: datetime
    ) -> Decimal | None:
        """The per-window baseline of ``scope`` at window start ``at`` (None: no history)."""
        hist = self._scopes.get(json.dumps(scope, sort_keys=True))
        if hist is None:
            return None
        return self._baseline(hist, _epoch_s(at), METRICS.index(metric))[0]

    @property
    def scope_count(self) -> int:
        return len(self._scopes)

    # -- internals ----------------------------------------------------------------------

    def _hour(self, start: int) -> int:
        return start - start % self.config.bucket_s

    def _record(self, hist: _ScopeHistory, start: int, vals: list[Decimal]) -> None:
        hour = self._hour(start)
        bucket = hist.buckets.setdefault(hour, [Decimal(0)] * len(METRICS))
        for i, v in enumerate(vals):
            bucket[i] += v
        hist.first_start = min(hist.first_start, start)
        hist.last_start = max(hist.last_start, start)
        if hour < hist.cache_hour:  # a straggler changed a complete hour
            hist.cache_hour = -1
        horizon_start = hour - self.config.horizon_days * 86_400
        for old in [b for b in hist.buckets if b < horizon_start]:
            del hist.buckets[old]

    def _windows_in(self, hist: _ScopeHistory, lo: int, hi: int) -> int:
        """Number of windows of history in ``[lo, hi)`` (nothing before first_start)."""
        lo = max(lo, hist.first_start)
        return max(0, (hi - lo) // self.config.window_s)

    def _stats(self, hist: _ScopeHistory, hour: int) -> dict[str, _Stats]:
        if hist.cache_hour == hour:
            return hist.cache
        cfg = self.config
        horizon_start = hour - cfg.horizon_days * 86_400
        stats: dict[str, _Stats] = {}
        for i, metric in enumerate(METRICS):
            total = sum(
                (v[i] for b, v in hist.buckets.items() if horizon_start <= b < hour), Decimal(0)
            )
            # Per-window rate of every complete hour in the horizon (idle hours are 0).
            rates: list[float] = []
            b = max(horizon_start, self._hour(hist.first_start))
            while b < hour:
                n = self._windows_in(hist, b, b + cfg.bucket_s)
                if n:
                    rates.append(float(hist.buckets.get(b, [Decimal(0)] * 3)[i]) / n)
                b += cfg.bucket_s
            seasonal_rates: list[Decimal] = []
            for day in range(1, cfg.horizon_days + 1):
                b = hour - day * 86_400
                n = self._windows_in(hist, b, b + cfg.bucket_s)
                if n:
                    seasonal_rates.append(hist.buckets.get(b, [Decimal(0)] * 3)[i] / n)
            if rates:
                median = statistics.median(rates)
                mad = statistics.median(abs(r - median) for r in rates)
            else:
                median = mad = 0.0
            scale = 1.4826 * mad or max(abs(median) * 0.05, 1e-9)
            stats[metric] = _Stats(
                complete_total=total,
                seasonal=statistics.median(seasonal_rates) if seasonal_rates else None,
                median=median,
                scale=scale,
            )
        hist.cache_hour, hist.cache = hour, stats
        return stats

    def _baseline(
        self, hist: _ScopeHistory, start: int, i: int
    ) -> tuple[Decimal | None, _Stats | None]:
        cfg = self.config
        hour = self._hour(start)
        n = self._windows_in(hist, hour - cfg.horizon_days * 86_400, start)
        if n == 0:
            return None, None
        stats = self._stats(hist, hour)[METRICS[i]]
        current = hist.buckets.get(hour, [Decimal(0)] * 3)[i]
        mean = (stats.complete_total + current) / n
        base = max(mean, stats.seasonal) if stats.seasonal is not None else mean
        return base.quantize(_Q), stats

    def _evaluate(
        self,
        skey: str,
        hist: _ScopeHistory,
        start: int,
        vals: list[Decimal],
        detected_at: datetime,
    ) -> list[Anomaly]:
        cfg = self.config
        if start - hist.first_start < cfg.min_history_s:
            return []
        out: list[Anomaly] = []
        for rule in cfg.rules:
            i = METRICS.index(rule.metric)
            value = vals[i]
            if value < rule.min_value:
                continue
            last = hist.last_fired.get(rule.metric)
            if last is not None and start < last + cfg.cooldown_s:
                continue
            base, stats = self._baseline(hist, start, i)
            if base is None or stats is None or value <= rule.factor * base:
                continue
            ratio = min(float(value / base), _CAP) if base > 0 else _CAP
            score = max(-_CAP, min(_CAP, (float(value) - stats.median) / stats.scale))
            hist.last_fired[rule.metric] = start
            scope: dict[str, str] = json.loads(skey)
            window_start = _EPOCH + timedelta(seconds=start)
            out.append(
                Anomaly(
                    anomaly_id=Anomaly.make_id(scope, rule.metric, window_start),
                    scope=scope,
                    metric=rule.metric,
                    window_start=window_start,
                    window_s=cfg.window_s,
                    value=value,
                    baseline=base,
                    score=round(score, 3),
                    ratio=round(ratio, 3),
                    detected_at=detected_at,
                )
            )
        return out

    # -- state --------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON-able history of every scope (config is not included: it comes from code)."""
        return {
            "version": STATE_VERSION,
            "scopes": {
                skey: {
                    "first_start": h.first_start,
                    "last_start": h.last_start,
                    "buckets": {str(b): [str(v) for v in vals] for b, vals in h.buckets.items()},
                    "last_fired": dict(h.last_fired),
                }
                for skey, h in self._scopes.items()
            },
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], config: AnomalyConfig | None = None
    ) -> AnomalyDetector:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported anomaly state version {state.get('version')!r}")
        det = cls(config)
        for skey, h in state["scopes"].items():
            det._scopes[skey] = _ScopeHistory(
                first_start=int(h["first_start"]),
                last_start=int(h["last_start"]),
                buckets={int(b): [Decimal(v) for v in vals] for b, vals in h["buckets"].items()},
                last_fired={k: int(v) for k, v in h["last_fired"].items()},
            )
        return det
