"""Budget period arithmetic, all in UTC.

``period_start(defn, ts)`` is the start of the period containing ``ts`` and
``period_end(defn, ts)`` its exclusive end: ``start <= ts < end``. A timestamp exactly
on a boundary belongs to the period that STARTS there.

* ``hour``: ``HH:00:00``; ``day``: ``00:00``; ``week``: ISO week, Monday 00:00;
  ``month``: the 1st 00:00 of the calendar month (28–31 days, leap years included).
* ``rolling`` with ``rolling_days`` N: the last N whole UTC days INCLUDING today,
  i.e. ``[today − (N−1) days, tomorrow)``. The window moves once a day at 00:00 UTC,
  not continuously: the ledger keeps one spend bucket per UTC day and sums the
  buckets in the window, so its state stays N numbers however many events arrive.
  (A continuous window would need per-event history; day granularity is what
  "last 30 days" budgets mean in practice.)

UTC has no DST, so every day is 24 h; inputs in any timezone are converted first.
Naive datetimes are refused (``ValueError``): a budget boundary must not depend on
the host's local time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol

__all__ = [
    "PeriodSpec",
    "day_floor",
    "minute_floor",
    "period_bounds",
    "period_end",
    "period_start",
    "rolling_window_days",
]


class PeriodSpec(Protocol):
    """What the period functions need of a budget (``BudgetDefinition`` fits)."""

    @property
    def period(self) -> str: ...

    @property
    def rolling_days(self) -> int | None: ...


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp {ts.isoformat()} has no timezone; budgets use UTC")
    return ts.astimezone(UTC)


def minute_floor(ts: datetime) -> datetime:
    """The UTC minute containing ``ts`` (the rate-limit window)."""
    return _utc(ts).replace(second=0, microsecond=0)


def day_floor(ts: datetime) -> datetime:
    """00:00 UTC of the day containing ``ts``."""
    return _utc(ts).replace(hour=0, minute=0, second=0, microsecond=0)


def _rolling_days(defn: PeriodSpec) -> int:
    n = defn.rolling_days
    if n is None or n < 1:
        raise ValueError("a rolling budget needs rolling_days >= 1")
    return n


def period_start(defn: PeriodSpec, ts: datetime) -> datetime:
    """Start (inclusive, UTC) of ``defn``'s period containing ``ts``."""
    t = _utc(ts)
    p = defn.period
    if p == "hour":
        return t.replace(minute=0, second=0, microsecond=0)
    if p == "day":
        return day_floor(t)
    if p == "week":
        return day_floor(t) - timedelta(days=t.weekday())  # Monday is weekday 0 (ISO)
    if p == "month":
        return day_floor(t).replace(day=1)
    if p == "rolling":
        return day_floor(t) - timedelta(days=_rolling_days(defn) - 1)
    raise ValueError(f"unknown budget period {p!r}")


def period_end(defn: PeriodSpec, ts: datetime) -> datetime:
    """End (exclusive, UTC) of ``defn``'s period containing ``ts``."""
    t = _utc(ts)
    p = defn.period
    if p == "hour":
        return period_start(defn, t) + timedelta(hours=1)
    if p == "day" or p == "rolling":
        return day_floor(t) + timedelta(days=1)
    if p == "week":
        return period_start(defn, t) + timedelta(days=7)
    if p == "month":
        start = period_start(defn, t)
        if start.month == 12:
            return start.replace(year=start.year + 1, month=1)
        return start.replace(month=start.month + 1)
    raise ValueError(f"unknown budget period {p!r}")


def period_bounds(defn: PeriodSpec, ts: datetime) -> tuple[datetime, datetime]:
    """``(period_start, period_end)`` of the period containing ``ts``."""
    return period_start(defn, ts), period_end(defn, ts)


def rolling_window_days(defn: PeriodSpec, ts: datetime) -> list[date]:
    """The UTC days of the rolling window containing ``ts``, oldest first."""
    today = day_floor(ts).date()
    n = _rolling_days(defn)
    return [today - timedelta(days=i) for i in range(n - 1, -1, -1)]
