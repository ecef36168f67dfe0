"""Period boundaries (UTC): hour, day, ISO week, calendar month, rolling N days."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.budgets.periods import period_bounds, period_end, period_start, rolling_window_days

AWARE = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)


def spec(period: str, n: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(period=period, rolling_days=n)


PERIODS = st.sampled_from(["hour", "day", "week", "month"]).map(spec) | st.integers(1, 60).map(
    lambda n: spec("rolling", n)
)


@given(PERIODS, AWARE)
def test_ts_inside_its_period(p: SimpleNamespace, ts: datetime) -> None:
    start, end = period_bounds(p, ts)
    assert start <= ts < end
    assert start.tzinfo is UTC and end.tzinfo is UTC


@given(PERIODS, AWARE)
def test_boundary_starts_the_next_period(p: SimpleNamespace, ts: datetime) -> None:
    end = period_end(p, ts)
    if p.period == "rolling":
        # the window moves by one day: at its end the window starts one day later
        assert period_start(p, end) == period_start(p, ts) + timedelta(days=1)
    else:
        assert period_start(p, end) == end
        assert period_end(p, end - timedelta(microseconds=1)) == end
        assert period_start(p, end - timedelta(microseconds=1)) == period_start(p, ts)


@given(st.sampled_from(["hour", "day", "week", "month"]).map(spec), AWARE, OFFSETS)
def test_timezone_of_the_input_does_not_matter(p, ts: datetime, tz) -> None:
    assert period_start(p, ts.astimezone(tz)) == period_start(p, ts)


@given(AWARE)
def test_week_is_iso_monday(ts: datetime) -> None:
    start = period_start(spec("week"), ts)
    assert start.weekday() == 0 and start.time() == datetime.min.time()
    assert start.isocalendar()[:2] == ts.isocalendar()[:2]
    assert period_end(spec("week"), ts) - start == timedelta(days=7)


@given(AWARE)
def test_month_lengths_and_leap_years(ts: datetime) -> None:
    start, end = period_bounds(spec("month"), ts)
    assert start.day == 1 and (start.year, start.month) == (ts.year, ts.month)
    assert (end - start).days == calendar.monthrange(ts.year, ts.month)[1]


@given(st.integers(1, 60), AWARE)
def test_rolling_window_is_n_whole_days(n: int, ts: datetime) -> None:
    p = spec("rolling", n)
    start, end = period_bounds(p, ts)
    assert (end - start) == timedelta(days=n)
    days = rolling_window_days(p, ts)
    assert len(days) == n and days[0] == start.date() and days[-1] == ts.date()


def test_examples() -> None:
    ts = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
    assert period_bounds(spec("month"), ts) == (
        datetime(2024, 2, 1, tzinfo=UTC),
        datetime(2024, 3, 1, tzinfo=UTC),
    )
    assert period_end(spec("month"), datetime(2023, 12, 31, tzinfo=UTC)) == datetime(
        2024, 1, 1, tzinfo=UTC
    )
    # 2021-01-03 is a Sunday in ISO week 2020-W53 whose Monday is 2020-12-28
    assert period_start(spec("week"), datetime(2021, 1, 3, 12, tzinfo=UTC)) == datetime(
        2020, 12, 28, tzinfo=UTC
    )
    at = datetime(2025, 3, 31, 15, tzinfo=UTC)
    assert period_bounds(spec("rolling", 30), at) == (
        datetime(2025, 3, 2, tzinfo=UTC),
        datetime(2025, 4, 1, tzinfo=UTC),
    )
    hour = datetime(2025, 3, 30, 1, 0, tzinfo=UTC)  # EU DST switch: irrelevant in UTC
    assert period_bounds(spec("hour"), hour) == (hour, hour + timedelta(hours=1))


def test_naive_and_bad_specs_refused() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        period_start(spec("day"), datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="rolling_days"):
        period_start(spec("rolling"), datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="unknown budget period"):
        period_end(spec("year"), datetime(2025, 1, 1, tzinfo=UTC))
