"""Tumbling event-time windows over costed usage, for real-time decisions only.

Windows are 1 minute by default, keyed by (tenant, user, team, feature, model,
api_key_id), and hold calls, tokens by kind, cost and unpriced calls. They feed
the anomaly detector and the spend-rate / unpriced-cost evaluators. They are NOT
history: ClickHouse materialized views over ``usage_raw`` are the one source of
truth for rollups (see docs/alerts.md). That is why a late event is simply not
counted here (``late_dropped``): it still reaches ClickHouse through the raw sink.

Contract of ``WindowAggregator``:

- ``add_batch(records)`` aggregates a whole batch in one pass into per-(key,
  window) deltas and merges each delta into state once (one state update per key
  per batch). Lateness is judged against the watermark as it was BEFORE the
  batch, so the order of records inside a batch never changes the result.
- The watermark is the highest event time seen (optionally held back to
  ``now + max_skew_s`` so a client with a clock in the future cannot close every
  window early), or a higher value passed to ``closed_windows``.
- A record is accepted while ``window_end + grace > watermark``; otherwise it is
  counted in ``late_dropped`` and ignored.
- ``closed_windows(watermark)`` removes and yields, ordered by window start, every
  window with ``window_end + grace <= watermark``. Each window is yielded once.
- ``to_state()`` / ``from_state()`` round-trip through JSON-able dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.usage import CostedUsage

DEFAULT_WINDOW_S = 60
DEFAULT_GRACE_S = 60
STATE_VERSION = 1

KEY_DIMS: tuple[str, ...] = ("tenant", "user", "team", "feature", "model", "api_key_id")
TOKEN_KINDS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, order=True)
class WindowKey:
    """The dimensions one stream window is kept for."""

    tenant: str
    user: str = ""
    team: str = ""
    feature: str = ""
    model: str = ""
    api_key_id: str = ""

    @classmethod
    def of(cls, r: CostedUsage) -> WindowKey:
        return cls(r.tenant, r.user, r.team, r.feature, r.model, r.api_key_id)

    def as_dict(self) -> dict[str, str]:
        return {d: getattr(self, d) for d in KEY_DIMS}


@dataclass(slots=True)
class WindowAgg:
    """Totals of one key over one window ``[start, end)``."""

    key: WindowKey
    start: datetime
    end: datetime
    calls: int = 0
    error_calls: int = 0
    unpriced_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = field(default_factory=Decimal)

    @property
    def total_tokens(self) -> int:
        """Input + output (cache and reasoning are parts of those, never added on top)."""
        return self.input_tokens + self.output_tokens

    def add(self, r: CostedUsage) -> None:
        self.calls += 1
        self.error_calls += r.status == "error"
        self.unpriced_calls += not r.priced
        self.input_tokens += r.input_tokens
        self.output_tokens += r.output_tokens
        self.cache_read_tokens += r.cache_read_tokens
        self.cache_write_tokens += r.cache_write_tokens
        self.reasoning_tokens += r.reasoning_tokens
        self.cost_usd += r.cost_usd

    def merge(self, other: WindowAgg) -> None:
        """Add ``other`` (same key and window) into this one."""
        self.calls += other.calls
        self.error_calls += other.error_calls
        self.unpriced_calls += other.unpriced_calls
        for kind in TOKEN_KINDS:
            setattr(self, kind, getattr(self, kind) + getattr(other, kind))
        self.cost_usd += other.cost_usd

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = self.key.as_dict()
        out.update(
            start=self.start.isoformat(),
            end=self.end.isoformat(),
            calls=self.calls,
            error_calls=self.error_calls,
            unpriced_calls=self.unpriced_calls,
            cost_usd=str(self.cost_usd),
        )
        for kind in TOKEN_KINDS:
            out[kind] = getattr(self, kind)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowAgg:
        return cls(
            key=WindowKey(**{k: str(d[k]) for k in KEY_DIMS}),
            start=datetime.fromisoformat(d["start"]),
            end=datetime.fromisoformat(d["end"]),
            calls=int(d["calls"]),
            error_calls=int(d["error_calls"]),
            unpriced_calls=int(d["unpriced_calls"]),
            cost_usd=Decimal(d["cost_usd"]),
            **{kind: int(d[kind]) for kind in TOKEN_KINDS},
        )


def window_start(ts: datetime, window_s: int = DEFAULT_WINDOW_S) -> datetime:
    """Start of the tumbling window holding ``ts`` (windows aligned to the Unix epoch)."""
    micros = (ts - _EPOCH) // timedelta(microseconds=1)
    size = window_s * 1_000_000
    return _EPOCH + timedelta(microseconds=micros - micros % size)


def _aggregate(
    records: Iterable[CostedUsage], window_s: int
) -> tuple[dict[tuple[WindowKey, datetime], WindowAgg], datetime | None]:
    out: dict[tuple[WindowKey, datetime], WindowAgg] = {}
    size = timedelta(seconds=window_s)
    max_ts: datetime | None = None
    for r in records:
        if max_ts is None or r.ts > max_ts:
            max_ts = r.ts
        start = window_start(r.ts, window_s)
        slot = (WindowKey.of(r), start)
        agg = out.get(slot)
        if agg is None:
            agg = out[slot] = WindowAgg(key=slot[0], start=start, end=start + size)
        agg.add(r)
    return out, max_ts


def aggregate_batch(
    records: Iterable[CostedUsage], window_s: int = DEFAULT_WINDOW_S
) -> dict[tuple[WindowKey, datetime], WindowAgg]:
    """One pass over ``records``: per-(key, window start) totals. No lateness rules."""
    return _aggregate(records, window_s)[0]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one ``add_batch`` did."""

    accepted: int
    late_dropped: int
    keys_updated: int


class WindowAggregator:
    """Tumbling windows with a grace period for late events. Pure; no I/O, no clock."""

    def __init__(
        self,
        window_s: int = DEFAULT_WINDOW_S,
        grace_s: int = DEFAULT_GRACE_S,
        max_skew_s: int = 300,
    ) -> None:
        if window_s <= 0 or grace_s < 0 or max_skew_s < 0:
            raise ValueError("window_s must be > 0, grace_s and max_skew_s >= 0")
        self.window_s = window_s
        self.grace_s = grace_s
        self.max_skew_s = max_skew_s
        self.watermark: datetime | None = None
        self.late_dropped = 0
        self._windows: dict[tuple[WindowKey, datetime], WindowAgg] = {}

    @property
    def open_windows(self) -> int:
        return len(self._windows)

    def _is_late(self, start: datetime) -> bool:
        if self.watermark is None:
            return False
        end = start + timedelta(seconds=self.window_s + self.grace_s)
        return end <= self.watermark

    def add_batch(self, records: Iterable[CostedUsage], now: datetime | None = None) -> BatchResult:
        """Aggregate ``records`` in one pass, then merge once per (key, window).

        ``now`` (wall clock, optional) caps how far this batch can move the
        watermark: to at most ``now + max_skew_s``.
        """
        deltas, max_ts = _aggregate(records, self.window_s)
        accepted = late = 0
        for slot, delta in deltas.items():
            if self._is_late(delta.start):
                late += delta.calls
                continue
            accepted += delta.calls
            current = self._windows.get(slot)
            if current is None:
                self._windows[slot] = delta
            else:
                current.merge(delta)
        # The watermark moves only after the whole batch, so lateness inside a batch
        # does not depend on the order of its records.
        if max_ts is not None:
            if now is not None:
                max_ts = min(max_ts, now + timedelta(seconds=self.max_skew_s))
            self._advance(max_ts)
        self.late_dropped += late
        return BatchResult(accepted=accepted, late_dropped=late, keys_updated=len(deltas))

    def _advance(self, watermark: datetime) -> None:
        if self.watermark is None or watermark > self.watermark:
            self.watermark = watermark

    def closed_windows(self, watermark: datetime | None = None) -> Iterator[WindowAgg]:
        """Remove and yield every window with ``end + grace <= watermark``, oldest first.

        ``watermark`` defaults to the event-time watermark; pass wall-clock time
        (e.g. from a timer) to close windows of an idle stream. The watermark never
        moves back.
        """
        if watermark is not None:
            self._advance(watermark)
        if self.watermark is None:
            return
        grace = timedelta(seconds=self.grace_s)
        done = [slot for slot, agg in self._windows.items() if agg.end + grace <= self.watermark]
        done.sort(key=lambda slot: (slot[1], slot[0]))
        for slot in done:
            yield self._windows.pop(slot)

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (open windows, watermark, late counter)."""
        return {
            "version": STATE_VERSION,
            "window_s": self.window_s,
            "grace_s": self.grace_s,
            "max_skew_s": self.max_skew_s,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "late_dropped": self.late_dropped,
            "windows": [agg.to_dict() for agg in self._windows.values()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WindowAggregator:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported window state version {state.get('version')!r}")
        agg = cls(int(state["window_s"]), int(state["grace_s"]), int(state["max_skew_s"]))
        if state["watermark"]:
            agg.watermark = datetime.fromisoformat(state["watermark"])
        agg.late_dropped = int(state["late_dropped"])
        for d in state["windows"]:
            w = WindowAgg.from_dict(d)
            agg._windows[(w.key, w.start)] = w
        return agg
