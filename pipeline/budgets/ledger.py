"""The budget ledger: pure, copy-on-write state of ONE budget and the functions over it.

The faust table ``budget-ledger`` is keyed by budget id (:func:`.matching.ledger_key`),
so each budget's :class:`LedgerState` is owned by one partition and changed by one
task: ``reserve`` is a check-and-reserve without locks, because nothing else runs
between the check and the write. Every function here takes a state and returns a NEW
state (the input is never mutated), so the wiring can compute a batch's new value and
write it to the table once per key per batch.

Units
    Amounts are ``Decimal`` in the budget's unit: USD, or tokens (integral Decimals;
    ``input_tokens + output_tokens`` of an event, cache and reasoning being parts of
    those totals).

Reservations (pre-flight)
    :func:`reserve` first expires stale reservations and rolls the period over, then
    admits the request when ``spent + reserved + estimate <= limit`` (and the
    per-request cap and per-minute rate limits hold). A hard budget denies otherwise;
    a soft one admits and lists what it let through in ``warnings``. The request id
    is the reservation id; reserving the same id again is idempotent. The costed event
    carrying ``reservation_id`` settles it in :func:`apply_costed`: the estimate is
    released and the actual amount added. An unpriced event (``priced=False``, USD
    budget) settles at its reserved estimate — an unknown cost is never counted as $0
    when we have a better number. Unsettled reservations expire at ``expires_at``.
    A reserve that spans several budgets (several ledgers, several partitions) is
    reserved in each and combined with :func:`combine_decisions`; when the combined
    answer is a denial the wiring calls :func:`release` on the budgets that admitted
    it. Between those two steps a budget may briefly hold an estimate that will be
    released: that can only deny more, never overspend.

Replays (at-least-once tables)
    The state carries, per source partition of ``usage.costed``, the offset of the
    last applied record (``watermarks``). :func:`apply_costed` skips any record at or
    below its partition's watermark, so a batch replayed after a crash (its table
    update already changelogged) changes nothing and emits no alert.

Periods, late and future events
    A costed record counts in the period of ITS timestamp. The state holds only the
    current period (the one containing ``now``): a record of an earlier, closed
    period is "late" — it still settles its reservation but is not added to the
    current period's spend (counted in ``late_events`` / ``late_amount``; ClickHouse
    has it for reports). Alerts are never raised for a closed period. A record dated
    AFTER the current period (producer clock ahead) counts in the current period: a
    skewed clock must not be able to reset a budget by rolling it forward.
    Rolling budgets keep one bucket per UTC day (see :mod:`.periods`); a record of a
    day still inside the window is added to that day's bucket, older ones are late.

Thresholds
    Each threshold (and the emergency one) fires one :class:`~schemas.budgets.Alert`
    when ``spent`` reaches ``limit × percent / 100``: once per period, one alert per
    threshold even when one event crosses several. Calendar periods re-arm every
    threshold at rollover; a rolling window re-arms a threshold when old days leave
    the window and the spend falls back below it. Alert ids are deterministic
    (budget, period start, threshold).

Rate limits
    Fixed one-minute UTC windows. Admitted reservations count one request and their
    estimated tokens; when a reservation settles inside the same minute its tokens are
    corrected to the actual count. A costed event without a reservation counts when
    its timestamp is in the current minute. Denied requests do not count.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from pipeline.budgets.periods import day_floor, minute_floor, period_end, period_start
from schemas.budgets import (
    Alert,
    BudgetDefinition,
    BudgetState,
    DenyReason,
    ModelSuggestion,
    ReserveDecision,
    ReserveRequest,
    alert_id,
)

__all__ = [
    "STATE_FORMAT",
    "CostedRecord",
    "Held",
    "LedgerState",
    "Suggester",
    "apply_costed",
    "combine_decisions",
    "expire",
    "new_state",
    "release",
    "reserve",
    "state_from_dict",
    "state_to_dict",
    "status",
]

STATE_FORMAT = 1
"""Version of the serialised state (``state_to_dict``)."""

ZERO = Decimal(0)
_PERCENT_Q = Decimal("0.01")


class CostedRecord(Protocol):
    """What the ledger reads of a ``usage.costed`` record (``CostedUsage`` fits)."""

    @property
    def event_id(self) -> str: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def cost_usd(self) -> Decimal: ...
    @property
    def priced(self) -> bool: ...
    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def reservation_id(self) -> str | None: ...


Suggester = Callable[[ReserveRequest, Decimal], ModelSuggestion | None]
"""``(request, max_affordable_usd) -> suggestion``; see :mod:`pipeline.budgets.suggest`."""


@dataclass(frozen=True, slots=True)
class Held:
    """One open reservation: its amount (budget unit), expiry and rate-window bookkeeping."""

    amount: Decimal
    expires_at: datetime
    tokens: int = 0  # estimated tokens counted in the rate window at ``minute``
    minute: datetime | None = None


class Reservations(dict[str, Held]):
    """Open reservations: a dict that keeps its amount total and an expiry heap current.

    Reserve and expire then cost O(log n) instead of O(n) Python scans (measured
    before: 0.66 ms per reserve with 3,000 open reservations, growing linearly).
    States stay immutable in use: functions mutate only a fresh ``copy()``. The heap
    drops entries lazily (a released id stays in it until it reaches the top).
    """

    __slots__ = ("_heap", "total")

    def __init__(self, items: Mapping[str, Held] | None = None) -> None:
        super().__init__(items or {})
        self.total = sum((h.amount for h in self.values()), ZERO)
        self._heap = [(h.expires_at, rid) for rid, h in self.items()]
        heapq.heapify(self._heap)

    def copy(self) -> Reservations:
        new = Reservations()
        dict.update(new, self)
        new.total = self.total
        new._heap = self._heap.copy()
        return new

    def __setitem__(self, rid: str, held: Held) -> None:
        old = self.get(rid)
        if old is not None:
            self.total -= old.amount
        super().__setitem__(rid, held)
        self.total += held.amount
        heapq.heappush(self._heap, (held.expires_at, rid))

    def __delitem__(self, rid: str) -> None:
        held = self[rid]
        super().__delitem__(rid)
        self.total -= held.amount

    def pop(self, rid: str, default: Any = None) -> Any:
        if rid in self:
            held = self[rid]
            del self[rid]
            return held
        return default

    def next_expiry(self) -> datetime | None:
        """The earliest ``expires_at`` among open reservations (None when there are none)."""
        heap = self._heap
        while heap:
            at, rid = heap[0]
            held = self.get(rid)
            if held is not None and held.expires_at == at:
                return at
            heapq.heappop(heap)  # released or replaced: drop the stale entry
        return None

    def pop_expired(self, now: datetime) -> None:
        """Remove every reservation with ``expires_at <= now`` (call on a fresh copy)."""
        while (at := self.next_expiry()) is not None and at <= now:
            _, rid = heapq.heappop(self._heap)
            del self[rid]


def _copy_reserved(reserved: Mapping[str, Held]) -> Reservations:
    return reserved.copy() if isinstance(reserved, Reservations) else Reservations(reserved)


@dataclass(frozen=True, slots=True)
class LedgerState:
    """The ledger value of one budget. Treat as immutable: functions return new states.

    ``spent`` is the spend of the current period (for rolling budgets the sum of
    ``day_buckets``); ``period_start`` is ``None`` until the first operation.
    """

    budget_id: str
    period_start: datetime | None = None
    spent: Decimal = ZERO
    day_buckets: Mapping[date, Decimal] = field(default_factory=dict)
    reserved: Mapping[str, Held] = field(default_factory=Reservations)
    fired: frozenset[int] = frozenset()
    watermarks: Mapping[int, int] = field(default_factory=dict)
    rate_minute: datetime | None = None
    rate_requests: int = 0
    rate_tokens: int = 0
    late_events: int = 0
    late_amount: Decimal = ZERO
    unpriced_events: int = 0

    @property
    def reserved_total(self) -> Decimal:
        """Sum of the open reservations (expired ones included until :func:`expire`)."""
        if isinstance(self.reserved, Reservations):
            return self.reserved.total if self.reserved else ZERO
        return sum((h.amount for h in self.reserved.values()), ZERO)


def new_state(defn: BudgetDefinition) -> LedgerState:
    """The empty ledger of ``defn`` (what a missing table key means)."""
    return LedgerState(budget_id=defn.id)


# --------------------------------------------------------------------------- helpers
def _crossed(spent: Decimal, limit: Decimal, percent: int) -> bool:
    # spent >= limit * percent / 100, without a division.
    return spent * 100 >= limit * percent


def _rearm(fired: frozenset[int], spent: Decimal, limit: Decimal) -> frozenset[int]:
    return frozenset(t for t in fired if _crossed(spent, limit, t))


def expire(state: LedgerState, now: datetime) -> LedgerState:
    """Drop reservations whose ``expires_at`` is at or before ``now``."""
    current = state.reserved
    if isinstance(current, Reservations):
        first = current.next_expiry()
        if first is None or first > now:
            return state  # the common case: nothing due, O(1)
    elif not any(h.expires_at <= now for h in current.values()):
        return state
    reserved = _copy_reserved(current)
    reserved.pop_expired(now)
    return replace(state, reserved=reserved)


def _roll(state: LedgerState, defn: BudgetDefinition, now: datetime) -> LedgerState:
    """Move the state to the period containing ``now`` (never backwards)."""
    start = period_start(defn, now)
    current = state.period_start
    if current is not None and start <= current:
        return state
    if defn.period == "rolling":
        first_day = start.date()
        buckets = {d: v for d, v in state.day_buckets.items() if d >= first_day}
        spent = sum(buckets.values(), ZERO)
        fired = _rearm(state.fired, spent, defn.limit)
        return replace(state, period_start=start, day_buckets=buckets, spent=spent, fired=fired)
    return replace(state, period_start=start, spent=ZERO, day_buckets={}, fired=frozenset())


def _roll_minute(state: LedgerState, now: datetime) -> LedgerState:
    minute = minute_floor(now)
    if state.rate_minute is not None and minute <= state.rate_minute:
        return state
    return replace(state, rate_minute=minute, rate_requests=0, rate_tokens=0)


def _advance(state: LedgerState, defn: BudgetDefinition, now: datetime) -> LedgerState:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (UTC)")
    if state.budget_id != defn.id:
        raise ValueError(f"ledger of {state.budget_id!r} used with budget {defn.id!r}")
    return _roll_minute(_roll(expire(state, now), defn, now), now)


def _remaining(state: LedgerState, defn: BudgetDefinition) -> Decimal:
    return defn.limit - state.spent - state.reserved_total


def _max_affordable_usd(state: LedgerState, defn: BudgetDefinition) -> Decimal | None:
    bounds: list[Decimal] = []
    if defn.unit == "usd":
        bounds.append(max(_remaining(state, defn), ZERO))
    if defn.per_request_cap_usd is not None:
        bounds.append(defn.per_request_cap_usd)
    return min(bounds) if bounds else None


# --------------------------------------------------------------------------- reserve
def reserve(
    state: LedgerState,
    defn: BudgetDefinition,
    request: ReserveRequest,
    now: datetime,
    *,
    suggest: Suggester | None = None,
) -> tuple[LedgerState, ReserveDecision]:
    """Check-and-reserve ``request`` against ``defn``; returns the new state and the answer.

    Checks, in this order (the first failing one is a hard budget's ``reason``):
    ``estimate_missing`` (USD budget without ``estimate_usd``, token budget or
    ``max_tokens_per_minute`` without ``estimate_tokens``, cap without
    ``estimate_usd``), ``per_request_cap``, ``rate_limit_requests``,
    ``rate_limit_tokens``, ``budget_exceeded`` (``spent + reserved + estimate > limit``).
    A denial still returns an advanced state (expired reservations dropped, period
    rolled over): store it. ``suggest`` is asked for a cheaper model when a USD
    constraint denied the request.
    """
    s = _advance(state, defn, now)
    rid = request.request_id
    if rid in s.reserved:
        held = s.reserved[rid]
        return s, ReserveDecision(
            allowed=True,
            reason="already_reserved",
            remaining={defn.id: _remaining(s, defn)},
            reservation_id=rid,
            expires_at=held.expires_at,
            budget_ids=[defn.id],
        )

    estimate = (
        request.estimate_usd
        if defn.unit == "usd"
        else (None if request.estimate_tokens is None else Decimal(request.estimate_tokens))
    )
    violations: list[DenyReason] = []
    if estimate is None:
        violations.append("estimate_missing")
    cap = defn.per_request_cap_usd
    if cap is not None:
        if request.estimate_usd is None:
            violations.append("estimate_missing")
        elif request.estimate_usd > cap:
            violations.append("per_request_cap")
    if defn.max_requests_per_minute is not None and (
        s.rate_requests + 1 > defn.max_requests_per_minute
    ):
        violations.append("rate_limit_requests")
    if defn.max_tokens_per_minute is not None:
        if request.estimate_tokens is None:
            violations.append("estimate_missing")
        elif s.rate_tokens + request.estimate_tokens > defn.max_tokens_per_minute:
            violations.append("rate_limit_tokens")
    amount = estimate if estimate is not None else ZERO
    if s.spent + s.reserved_total + amount > defn.limit:
        violations.append("budget_exceeded")
    violations = list(dict.fromkeys(violations))
    affordable = _max_affordable_usd(s, defn)

    if violations and defn.mode == "hard":
        reason = violations[0]
        suggestion = None
        if (
            suggest is not None
            and affordable is not None
            and any(v in ("budget_exceeded", "per_request_cap") for v in violations)
            and not any(v.startswith("rate_limit") or v == "estimate_missing" for v in violations)
        ):
            suggestion = suggest(request, affordable)
        return s, ReserveDecision(
            allowed=False,
            reason=reason,
            remaining={defn.id: _remaining(s, defn)},
            budget_ids=[defn.id],
            warnings=violations,
            max_affordable_usd=affordable,
            suggestion=suggestion,
        )

    expires_at = now.astimezone(UTC) + timedelta(seconds=request.ttl_s)
    tokens = request.estimate_tokens or 0
    reserved = _copy_reserved(s.reserved)
    reserved[rid] = Held(amount=amount, expires_at=expires_at, tokens=tokens, minute=s.rate_minute)
    s = replace(
        s,
        reserved=reserved,
        rate_requests=s.rate_requests + 1,
        rate_tokens=s.rate_tokens + tokens,
    )
    return s, ReserveDecision(
        allowed=True,
        reason="ok",
        remaining={defn.id: _remaining(s, defn)},
        reservation_id=rid,
        expires_at=expires_at,
        budget_ids=[defn.id],
        warnings=violations,
        max_affordable_usd=affordable,
    )


def release(state: LedgerState, reservation_id: str) -> LedgerState:
    """Cancel a reservation (call aborted, or another budget denied the combined reserve)."""
    if reservation_id not in state.reserved:
        return state
    reserved = _copy_reserved(state.reserved)
    del reserved[reservation_id]
    return replace(state, reserved=reserved)


def combine_decisions(
    decisions: Sequence[ReserveDecision],
    *,
    request: ReserveRequest | None = None,
    suggest: Suggester | None = None,
) -> ReserveDecision:
    """One answer for a request that matched several budgets (one decision each).

    Allowed only when every budget allowed it. ``reason`` is the first denial's (or
    ``ok``); ``remaining`` merges the budgets'; ``max_affordable_usd`` is the smallest.
    When denied and ``suggest``/``request`` are given, the suggestion must fit that
    smallest allowance; otherwise the first budget's suggestion is kept. The caller
    must :func:`release` the reservation in the budgets that admitted it when the
    combined answer is a denial. No decisions (no budget applies): allowed.
    """
    allowed = all(d.allowed for d in decisions)
    denied = [d for d in decisions if not d.allowed]
    remaining: dict[str, Decimal] = {}
    warnings: list[DenyReason] = []
    budget_ids: list[str] = []
    for d in decisions:
        remaining.update(d.remaining)
        warnings.extend(w for w in d.warnings if w not in warnings)
        budget_ids.extend(d.budget_ids)
    affordable_all = [d.max_affordable_usd for d in decisions if d.max_affordable_usd is not None]
    affordable = min(affordable_all) if affordable_all else None
    if allowed:
        expiries = [d.expires_at for d in decisions if d.expires_at is not None]
        ids = {d.reservation_id for d in decisions if d.reservation_id is not None}
        return ReserveDecision(
            allowed=True,
            reason="ok",
            remaining=remaining,
            reservation_id=next(iter(ids))
            if len(ids) == 1
            else (request.request_id if request is not None else None),
            expires_at=min(expiries) if expiries else None,
            budget_ids=budget_ids,
            warnings=warnings,
            max_affordable_usd=affordable,
        )
    suggestion = next((d.suggestion for d in denied if d.suggestion is not None), None)
    usd_denial = all(d.reason in ("budget_exceeded", "per_request_cap") for d in denied)
    if suggest is not None and request is not None and affordable is not None:
        suggestion = suggest(request, affordable) if usd_denial else None
    return ReserveDecision(
        allowed=False,
        reason=denied[0].reason,
        remaining=remaining,
        budget_ids=budget_ids,
        warnings=warnings,
        max_affordable_usd=affordable,
        suggestion=suggestion,
    )


# --------------------------------------------------------------------------- apply
def _actual(defn: BudgetDefinition, record: CostedRecord) -> Decimal | None:
    """The record's amount in the budget's unit; ``None`` = unknown (unpriced, USD budget)."""
    if defn.unit == "tokens":
        return Decimal(record.input_tokens + record.output_tokens)
    return Decimal(record.cost_usd) if record.priced else None


def apply_costed(
    state: LedgerState,
    defn: BudgetDefinition,
    records: Iterable[tuple[int, int, CostedRecord]],
    now: datetime,
) -> tuple[LedgerState, list[Alert]]:
    """Apply a BATCH of ``(partition, offset, record)`` of ``usage.costed`` to one budget.

    The caller passes only records matching ``defn`` (:mod:`.matching`). Records at or
    below their partition's watermark are skipped (replays); the others settle their
    reservation, add their actual amount to the period of their timestamp (see the
    module docstring for late and future records) and may cross thresholds. Returns
    the new state (write it once for the batch) and the alerts, in crossing order.
    """
    s = _advance(state, defn, now)
    assert s.period_start is not None
    limit = defn.limit
    thresholds = defn.all_thresholds
    emergency = defn.emergency_threshold

    watermarks = dict(s.watermarks)
    reserved = _copy_reserved(s.reserved)
    buckets = dict(s.day_buckets)
    spent = s.spent
    fired = set(s.fired)
    rate_requests, rate_tokens = s.rate_requests, s.rate_tokens
    late_events, late_amount, unpriced = s.late_events, s.late_amount, s.unpriced_events
    alerts: list[Alert] = []
    today = day_floor(now).date()
    current_start = s.period_start

    for partition, offset, rec in records:
        if offset <= watermarks.get(partition, -1):
            continue
        watermarks[partition] = offset

        held = reserved.pop(rec.reservation_id, None) if rec.reservation_id else None
        amount = _actual(defn, rec)
        if amount is None:
            unpriced += 1
            amount = held.amount if held is not None else ZERO

        tokens = rec.input_tokens + rec.output_tokens
        if held is not None:
            if held.minute is not None and held.minute == s.rate_minute:
                rate_tokens = max(0, rate_tokens + tokens - held.tokens)
        elif s.rate_minute is not None and minute_floor(rec.ts) == s.rate_minute:
            rate_requests += 1
            rate_tokens += tokens

        if defn.period == "rolling":
            day = min(day_floor(rec.ts).date(), today)
            late = day < current_start.date()
            if not late:
                buckets[day] = buckets.get(day, ZERO) + amount
        else:
            late = period_start(defn, rec.ts) < current_start
        if late:
            late_events += 1
            late_amount += amount
            continue
        spent += amount

        for t in thresholds:
            if t not in fired and _crossed(spent, limit, t):
                fired.add(t)
                alerts.append(
                    Alert(
                        alert_id=alert_id(defn.id, current_start, t),
                        budget_id=defn.id,
                        threshold=t,
                        emergency=t == emergency,
                        period_start=current_start,
                        spent=spent,
                        limit=limit,
                        unit=defn.unit,
                        mode=defn.mode,
                        event_id=rec.event_id,
                        ts=rec.ts,
                    )
                )

    new = replace(
        s,
        watermarks=watermarks,
        reserved=reserved,
        day_buckets=buckets,
        spent=spent,
        fired=frozenset(fired),
        rate_requests=rate_requests,
        rate_tokens=rate_tokens,
        late_events=late_events,
        late_amount=late_amount,
        unpriced_events=unpriced,
    )
    return new, alerts


# --------------------------------------------------------------------------- status
def status(state: LedgerState, defn: BudgetDefinition, now: datetime) -> BudgetState:
    """The budget's read model at ``now`` (expiry and rollover applied, state not stored)."""
    s = _advance(state, defn, now)
    reserved = s.reserved_total
    limit = defn.limit
    return BudgetState(
        budget_id=defn.id,
        unit=defn.unit,
        limit=limit,
        spent=s.spent,
        reserved=reserved,
        remaining=limit - s.spent - reserved,
        percent=(s.spent * 100 / limit).quantize(_PERCENT_Q),
        period_start=period_start(defn, now),
        period_end=period_end(defn, now),
        fired_thresholds=sorted(s.fired),
        open_reservations=len(s.reserved),
        as_of=now.astimezone(UTC),
    )


# --------------------------------------------------------------------------- serialise
def _dt(v: datetime | None) -> str | None:
    return None if v is None else v.astimezone(UTC).isoformat()


def _parse_dt(v: str | None) -> datetime | None:
    if v is None:
        return None
    parsed = datetime.fromisoformat(v)
    if parsed.tzinfo is None:
        raise ValueError(f"ledger state timestamp {v!r} has no timezone")
    return parsed.astimezone(UTC)


def state_to_dict(state: LedgerState) -> dict[str, Any]:
    """A JSON-able dict of ``state`` (the faust table value). Decimals are exact strings."""
    return {
        "format": STATE_FORMAT,
        "budget_id": state.budget_id,
        "period_start": _dt(state.period_start),
        "spent": str(state.spent),
        "day_buckets": {d.isoformat(): str(v) for d, v in sorted(state.day_buckets.items())},
        "reserved": {
            rid: {
                "amount": str(h.amount),
                "expires_at": _dt(h.expires_at),
                "tokens": h.tokens,
                "minute": _dt(h.minute),
            }
            for rid, h in state.reserved.items()
        },
        "fired": sorted(state.fired),
        "watermarks": {str(p): o for p, o in sorted(state.watermarks.items())},
        "rate_minute": _dt(state.rate_minute),
        "rate_requests": state.rate_requests,
        "rate_tokens": state.rate_tokens,
        "late_events": state.late_events,
        "late_amount": str(state.late_amount),
        "unpriced_events": state.unpriced_events,
    }


def state_from_dict(data: Mapping[str, Any]) -> LedgerState:
    """Inverse of :func:`state_to_dict`; raises ``ValueError`` on an unknown format."""
    if data.get("format") != STATE_FORMAT:
        raise ValueError(f"unknown ledger state format {data.get('format')!r}")
    reserved: dict[str, Held] = {}
    for rid, h in data["reserved"].items():
        expires_at = _parse_dt(h["expires_at"])
        assert expires_at is not None
        reserved[rid] = Held(
            amount=Decimal(h["amount"]),
            expires_at=expires_at,
            tokens=int(h["tokens"]),
            minute=_parse_dt(h["minute"]),
        )
    return LedgerState(
        budget_id=data["budget_id"],
        period_start=_parse_dt(data["period_start"]),
        spent=Decimal(data["spent"]),
        day_buckets={date.fromisoformat(d): Decimal(v) for d, v in data["day_buckets"].items()},
        reserved=Reservations(reserved),
        fired=frozenset(int(t) for t in data["fired"]),
        watermarks={int(p): int(o) for p, o in data["watermarks"].items()},
        rate_minute=_parse_dt(data["rate_minute"]),
        rate_requests=int(data["rate_requests"]),
        rate_tokens=int(data["rate_tokens"]),
        late_events=int(data["late_events"]),
        late_amount=Decimal(data["late_amount"]),
        unpriced_events=int(data["unpriced_events"]),
    )
