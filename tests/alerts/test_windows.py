"""Stream windows: batch aggregation, grace for late events, closing, state round-trip."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.windows import WindowAggregator, WindowKey, window_start
from tests.alerts.factory import T0, costed, minutes


def test_batch_is_aggregated_per_key_and_window() -> None:
    agg = WindowAggregator()
    batch = [
        costed(T0 + timedelta(seconds=1), input_tokens=100, output_tokens=10, cost_usd="0.5"),
        costed(
            T0 + timedelta(seconds=59),
            input_tokens=50,
            cache_read_tokens=40,
            output_tokens=30,
            reasoning_tokens=5,
            cost_usd="0.25",
            priced=False,
        ),
        costed(T0 + timedelta(seconds=60), cost_usd="1"),  # next window
        costed(T0 + timedelta(seconds=2), feature="search", cost_usd="2"),  # other key
    ]
    result = agg.add_batch(batch)
    assert (result.accepted, result.late_dropped, result.keys_updated) == (4, 0, 3)
    closed = list(agg.closed_windows(T0 + minutes(10)))
    assert [(w.start, w.key.feature) for w in closed] == [
        (T0, "chat"),
        (T0, "search"),
        (T0 + minutes(1), "chat"),
    ]
    first = closed[0]
    assert first.key == WindowKey("acme", "u1", "t1", "chat", "gpt-4o", "k1")
    assert first.calls == 2 and first.unpriced_calls == 1
    assert (first.input_tokens, first.output_tokens) == (150, 40)
    assert (first.cache_read_tokens, first.reasoning_tokens) == (40, 5)
    assert first.total_tokens == 190  # parts are inside the totals, not added on top
    assert first.cost_usd == Decimal("0.75")
    assert first.end == T0 + minutes(1)
    assert agg.open_windows == 0


def test_late_event_within_grace_is_counted_after_grace_dropped() -> None:
    agg = WindowAggregator(window_s=60, grace_s=60)
    agg.add_batch([costed(T0 + timedelta(seconds=10))])
    # Watermark 1:50 — window [0:00, 1:00) closes at 2:00 (end + grace): still open.
    agg.add_batch([costed(T0 + timedelta(seconds=110))])
    r = agg.add_batch([costed(T0 + timedelta(seconds=30))])
    assert (r.accepted, r.late_dropped) == (1, 0)
    # Watermark 2:00: now the first window is closed; a straggler for it is dropped.
    agg.add_batch([costed(T0 + timedelta(seconds=120))])
    closed = list(agg.closed_windows())
    assert [(w.start, w.calls) for w in closed] == [(T0, 2)]
    r = agg.add_batch([costed(T0 + timedelta(seconds=40)), costed(T0 + timedelta(seconds=61))])
    assert (r.accepted, r.late_dropped) == (1, 1)
    assert agg.late_dropped == 1
    # The window closed once; it is never emitted again.
    assert all(w.start != T0 for w in agg.closed_windows(T0 + minutes(60)))


def test_lateness_does_not_depend_on_order_inside_a_batch() -> None:
    records = [costed(T0 + timedelta(seconds=s)) for s in (5, 300, 65, 400, 10)]
    a, b = WindowAggregator(), WindowAggregator()
    a.add_batch(records)
    b.add_batch(list(reversed(records)))
    assert a.late_dropped == b.late_dropped == 0
    sa, sb = a.to_state(), b.to_state()
    key = lambda d: (d["start"], d["tenant"])  # noqa: E731
    assert sorted(sa.pop("windows"), key=key) == sorted(sb.pop("windows"), key=key)
    assert sa == sb


def test_clock_skewed_event_cannot_close_everything_when_now_is_given() -> None:
    agg = WindowAggregator(max_skew_s=30)
    agg.add_batch([costed(T0)], now=T0)
    agg.add_batch([costed(T0 + timedelta(days=1))], now=T0)  # client clock a day ahead
    assert agg.watermark == T0 + timedelta(seconds=30)
    r = agg.add_batch([costed(T0 + timedelta(seconds=20))], now=T0)
    assert r.late_dropped == 0


def test_closed_windows_with_wall_clock_closes_idle_stream() -> None:
    agg = WindowAggregator()
    agg.add_batch([costed(T0)])
    assert list(agg.closed_windows()) == []
    assert [w.start for w in agg.closed_windows(T0 + minutes(2))] == [T0]


def test_state_round_trips_through_json() -> None:
    agg = WindowAggregator(grace_s=120)
    agg.add_batch([costed(T0 + timedelta(seconds=s), cost_usd="0.123456789") for s in (1, 70)])
    agg.add_batch([costed(T0 + minutes(10))])
    agg.add_batch([costed(T0)])  # dropped: counted
    state = json.loads(json.dumps(agg.to_state()))
    back = WindowAggregator.from_state(state)
    assert back.to_state() == agg.to_state()
    assert back.late_dropped == 1
    assert [w.to_dict() for w in back.closed_windows(T0 + minutes(60))] == [
        w.to_dict() for w in agg.closed_windows(T0 + minutes(60))
    ]


def test_window_start_alignment() -> None:
    assert window_start(T0 + timedelta(seconds=59, microseconds=999_999)) == T0
    assert window_start(T0 + timedelta(seconds=60)) == T0 + minutes(1)
    assert window_start(T0 + timedelta(seconds=299), 300) == T0


_record = st.tuples(
    st.integers(0, 20 * 60_000),  # ms offset within 20 minutes
    st.sampled_from(["acme", "globex"]),
    st.sampled_from(["chat", "search", ""]),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.decimals(min_value=0, max_value=100, places=9, allow_nan=False, allow_infinity=False),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_record, max_size=80), st.integers(1, 10), st.randoms(use_true_random=False))
def test_window_sums_equal_sum_of_records(
    raw: list[tuple[int, str, str, int, int, Decimal, bool]], n_batches: int, rnd: random.Random
) -> None:
    records = [
        costed(
            T0 + timedelta(milliseconds=ms),
            tenant=t,
            feature=f,
            input_tokens=i,
            output_tokens=o,
            cost_usd=c,
            priced=p,
        )
        for ms, t, f, i, o, c, p in raw
    ]
    rnd.shuffle(records)
    agg = WindowAggregator(grace_s=3600)  # grace longer than the spread: nothing is late
    for k in range(n_batches):
        agg.add_batch(records[k::n_batches])
    windows = list(agg.closed_windows(T0 + timedelta(days=1)))
    assert agg.late_dropped == 0 and agg.open_windows == 0
    assert sum(w.calls for w in windows) == len(records)
    assert sum(w.input_tokens for w in windows) == sum(r.input_tokens for r in records)
    assert sum(w.output_tokens for w in windows) == sum(r.output_tokens for r in records)
    assert sum((w.cost_usd for w in windows), Decimal(0)) == sum(
        (r.cost_usd for r in records), Decimal(0)
    )
    assert sum(w.unpriced_calls for w in windows) == sum(not r.priced for r in records)
    # Each record landed in the window of its key and minute.
    for w in windows:
        mine = [r for r in records if WindowKey.of(r) == w.key and window_start(r.ts) == w.start]
        assert w.calls == len(mine)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30 * 60), max_size=15), max_size=8))
def test_accepted_plus_dropped_is_everything(batches: list[list[int]]) -> None:
    agg = WindowAggregator(grace_s=60)
    total = emitted = 0
    for seconds in batches:
        total += len(seconds)
        agg.add_batch([costed(T0 + timedelta(seconds=s)) for s in seconds])
        emitted += sum(w.calls for w in agg.closed_windows())
    emitted += sum(w.calls for w in agg.closed_windows(T0 + timedelta(days=1)))
    assert emitted + agg.late_dropped == total
