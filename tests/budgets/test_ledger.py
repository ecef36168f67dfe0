"""The ledger's semantics at the logic level, as the single owner task would run it."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.budgets.ledger import (
    LedgerState,
    apply_costed,
    combine_decisions,
    expire,
    new_state,
    release,
    reserve,
    state_from_dict,
    state_to_dict,
    status,
)
from schemas.budgets import ModelSuggestion
from schemas.usage import CostedUsage

from .conftest import T0, budget, costed, request


def roundtrip(s: LedgerState) -> LedgerState:
    return state_from_dict(json.loads(json.dumps(state_to_dict(s))))


# ------------------------------------------------------------------ reservations
def test_500_random_reservations_never_exceed_a_10_dollar_hard_budget() -> None:
    rng = random.Random(7)
    defn = budget(limit_usd=Decimal("10"))
    s = new_state(defn)
    admitted = Decimal(0)
    n_allowed = 0
    for i in range(500):
        est = Decimal(rng.randint(1, 200_000)) / Decimal(100_000)  # $0.00001 .. $2
        s, d = reserve(s, defn, request(f"r{i}", str(est)), T0 + timedelta(milliseconds=i))
        if d.allowed:
            admitted += est
            n_allowed += 1
            assert d.remaining["b1"] == Decimal(10) - admitted
        else:
            assert d.reason == "budget_exceeded"
        assert s.reserved_total == admitted <= Decimal(10)
    assert n_allowed > 5
    assert 0 <= Decimal(10) - admitted < Decimal(2)  # it got filled, not starved


def test_settle_replaces_the_estimate_with_the_actual() -> None:
    defn = budget()
    s, d = reserve(new_state(defn), defn, request("r1", "3"), T0)
    assert d.allowed and d.reservation_id == "r1" and d.remaining["b1"] == Decimal(7)
    s, alerts = apply_costed(s, defn, [(0, 1, costed("e1", "1.25", reservation_id="r1"))], T0)
    assert s.reserved == {} and s.spent == Decimal("1.25")
    st_ = status(s, defn, T0)
    assert st_.remaining == Decimal("8.75") and st_.reserved == 0 and alerts == []


def test_actual_above_estimate_counts_in_full_and_later_reserves_see_it() -> None:
    defn = budget()
    s, _ = reserve(new_state(defn), defn, request("r1", "1"), T0)
    s, _ = apply_costed(s, defn, [(0, 1, costed("e1", "9.5", reservation_id="r1"))], T0)
    s, d = reserve(s, defn, request("r2", "0.6"), T0)
    assert not d.allowed and d.reason == "budget_exceeded" and d.remaining["b1"] == Decimal("0.5")
    assert d.max_affordable_usd == Decimal("0.5")


def test_expiry_releases() -> None:
    defn = budget()
    s, _ = reserve(new_state(defn), defn, request("r1", "8", ttl_s=60), T0)
    s, d = reserve(s, defn, request("r2", "5"), T0 + timedelta(seconds=59))
    assert not d.allowed
    assert expire(s, T0 + timedelta(seconds=59)).reserved_total == 8
    assert expire(s, T0 + timedelta(seconds=60)).reserved_total == 0
    s, d = reserve(s, defn, request("r2", "5"), T0 + timedelta(seconds=60))
    assert d.allowed and s.reserved_total == 5


def test_reserve_is_idempotent_per_request_id_and_release_cancels() -> None:
    defn = budget()
    s, d1 = reserve(new_state(defn), defn, request("r1", "4"), T0)
    s, d2 = reserve(s, defn, request("r1", "4"), T0 + timedelta(seconds=1))
    assert d2.allowed and d2.reason == "already_reserved" and s.reserved_total == 4
    assert d2.expires_at == d1.expires_at
    s = release(s, "r1")
    assert s.reserved_total == 0 and release(s, "nope") is s


def test_settling_an_expired_reservation_still_counts_the_actual() -> None:
    defn = budget()
    s, _ = reserve(new_state(defn), defn, request("r1", "2", ttl_s=1), T0)
    later = T0 + timedelta(minutes=5)
    s, _ = apply_costed(s, defn, [(0, 1, costed("e1", "3", later, reservation_id="r1"))], later)
    assert s.spent == 3 and s.reserved == {}


def test_unpriced_event_settles_at_its_estimate() -> None:
    defn = budget()
    s, _ = reserve(new_state(defn), defn, request("r1", "2"), T0)
    rec = costed("e1", "0", reservation_id="r1", priced=False)
    s, _ = apply_costed(s, defn, [(0, 1, rec), (0, 2, costed("e2", "0", priced=False))], T0)
    assert s.spent == 2 and s.unpriced_events == 2


def test_per_request_cap_and_soft_mode() -> None:
    hard = budget(per_request_cap_usd=Decimal("1"))
    s, d = reserve(new_state(hard), hard, request("r1", "1.01"), T0)
    assert not d.allowed and d.reason == "per_request_cap" and d.max_affordable_usd == 1
    assert s.reserved == {}
    soft = budget(mode="soft", per_request_cap_usd=Decimal("1"))
    s, d = reserve(new_state(soft), soft, request("r1", "12"), T0)
    assert d.allowed and d.warnings == ["per_request_cap", "budget_exceeded"]
    assert d.remaining["b1"] == Decimal(-2)


def test_missing_estimate_is_denied_in_hard_mode() -> None:
    defn = budget()
    _s, d = reserve(new_state(defn), defn, request("r1", tokens=100), T0)
    assert not d.allowed and d.reason == "estimate_missing"


def test_suggestion_only_for_usd_denials() -> None:
    calls: list[Decimal] = []

    def suggest(req, max_usd):
        calls.append(max_usd)
        return ModelSuggestion(
            model="cheap", provider="p", estimate_usd=Decimal("0.1"), saves_usd=Decimal("1")
        )

    defn = budget(limit_usd=Decimal("1"))
    s, d = reserve(new_state(defn), defn, request("r1", "0.7"), T0, suggest=suggest)
    s, d = reserve(s, defn, request("r2", "0.7"), T0, suggest=suggest)
    assert not d.allowed and d.suggestion is not None and d.suggestion.model == "cheap"
    assert calls == [Decimal("0.3")]
    rl = budget(max_requests_per_minute=1)
    s, _ = reserve(new_state(rl), rl, request("a", "1"), T0, suggest=suggest)
    s, d = reserve(s, rl, request("b", "1"), T0, suggest=suggest)
    assert d.reason == "rate_limit_requests" and d.suggestion is None


# ------------------------------------------------------------------ token budgets / rates
def test_token_limit_budget() -> None:
    defn = budget(limit_tokens=1000)
    assert defn.unit == "tokens"
    s, d = reserve(new_state(defn), defn, request("r1", tokens=600), T0)
    assert d.allowed and d.remaining["b1"] == 400
    s, d = reserve(s, defn, request("r2", tokens=500), T0)
    assert not d.allowed
    rec = costed("e1", "99", reservation_id="r1", input_tokens=300, output_tokens=100)
    s, alerts = apply_costed(s, defn, [(0, 1, rec)], T0)
    assert s.spent == 400 and [a.threshold for a in alerts] == [] and s.reserved == {}
    s, d = reserve(s, defn, request("r2", tokens=500), T0)
    assert d.allowed and d.remaining["b1"] == 100


def test_requests_per_minute() -> None:
    defn = budget(limit_usd=Decimal("1000"), max_requests_per_minute=3)
    s = new_state(defn)
    results = []
    for i in range(5):
        s, d = reserve(s, defn, request(f"r{i}", "1"), T0 + timedelta(seconds=i))
        results.append(d.reason)
    assert results == ["ok"] * 3 + ["rate_limit_requests"] * 2
    s, d = reserve(s, defn, request("r9", "1"), T0 + timedelta(minutes=1))
    assert d.allowed  # a new minute


def test_tokens_per_minute_corrected_by_actuals() -> None:
    defn = budget(limit_usd=Decimal("1000"), max_tokens_per_minute=1000)
    s, d = reserve(new_state(defn), defn, request("r1", "1", tokens=900), T0)
    s, d = reserve(s, defn, request("r2", "1", tokens=200), T0)
    assert d.reason == "rate_limit_tokens"
    rec = costed("e1", "1", T0, reservation_id="r1", input_tokens=100, output_tokens=100)
    s, _ = apply_costed(s, defn, [(0, 1, rec)], T0 + timedelta(seconds=1))
    assert s.rate_tokens == 200
    s, d = reserve(s, defn, request("r2", "1", tokens=200), T0 + timedelta(seconds=2))
    assert d.allowed
    # a request reserved without a token estimate cannot be checked: refused
    s, d = reserve(s, defn, request("r3", "1"), T0 + timedelta(seconds=2))
    assert d.reason == "estimate_missing"


# ------------------------------------------------------------------ thresholds
def test_one_alert_per_threshold_per_period() -> None:
    defn = budget(emergency_threshold=98)
    s = new_state(defn)
    fired: list[int] = []
    for i in range(12):  # $1 each: 50% at 5, 75% at 8, 90% at 9, 98% + 100% at 10
        s, alerts = apply_costed(s, defn, [(0, i, costed(f"e{i}", "1"))], T0)
        fired += [a.threshold for a in alerts]
        for a in alerts:
            assert a.emergency == (a.threshold == 98)
    assert fired == [50, 75, 90, 98, 100]
    assert s.fired == {50, 75, 90, 98, 100}


def test_one_event_crossing_several_thresholds() -> None:
    defn = budget()
    s, alerts = apply_costed(new_state(defn), defn, [(0, 0, costed("e", "9.5"))], T0)
    assert [a.threshold for a in alerts] == [50, 75, 90]
    assert all(a.event_id == "e" and a.spent == Decimal("9.5") for a in alerts)
    assert len({a.alert_id for a in alerts}) == 3
    s, alerts = apply_costed(s, defn, [(0, 1, costed("f", "0.5"))], T0)
    assert [a.threshold for a in alerts] == [100]


def test_replay_of_a_batch_changes_nothing_and_emits_no_alert() -> None:
    defn = budget()
    batch = [(3, 10 + i, costed(f"e{i}", "2")) for i in range(4)]
    s1, alerts = apply_costed(new_state(defn), defn, batch, T0)
    assert [a.threshold for a in alerts] == [50, 75]
    assert s1.watermarks == {3: 13}
    s2, again = apply_costed(s1, defn, batch, T0)
    assert again == [] and s2 == s1
    # a replay overlapping new records applies only the new ones
    s3, more = apply_costed(
        s1, defn, [*batch[2:], (3, 14, costed("e4", "1")), (5, 0, costed("x", "0.5"))], T0
    )
    assert s3.spent == Decimal("9.5") and [a.threshold for a in more] == [90]
    assert s3.watermarks == {3: 14, 5: 0}


def test_restart_from_serialised_state_behaves_the_same() -> None:
    defn = budget(
        limit_usd=Decimal("10"), period="rolling", rolling_days=3, max_tokens_per_minute=10_000
    )
    s, _ = reserve(new_state(defn), defn, request("r1", "2", tokens=100), T0)
    s, alerts = apply_costed(s, defn, [(0, 0, costed("e0", "5.5", T0 - timedelta(days=1)))], T0)
    assert [a.threshold for a in alerts] == [50]
    restored = roundtrip(s)
    assert restored == s
    assert state_to_dict(restored) == state_to_dict(s)
    ops = [(0, 0, costed("e0", "5.5")), (0, 1, costed("e1", "3.123456789", reservation_id="r1"))]
    a, alerts_a = apply_costed(s, defn, ops, T0 + timedelta(seconds=5))
    b, alerts_b = apply_costed(restored, defn, ops, T0 + timedelta(seconds=5))
    assert a == b and alerts_a == alerts_b and [x.threshold for x in alerts_a] == [75]
    assert b.spent == Decimal("8.623456789")  # exact decimals through JSON


def test_rollover_resets_spent_and_fired_thresholds() -> None:
    defn = budget(period="day")
    s, alerts = apply_costed(new_state(defn), defn, [(0, 0, costed("e0", "6"))], T0)
    assert [a.threshold for a in alerts] == [50]
    before_midnight = datetime(2025, 6, 10, 23, 59, 30, tzinfo=UTC)
    s, _hold = reserve(s, defn, request("r1", "1"), before_midnight)
    tomorrow = before_midnight + timedelta(seconds=60)
    assert status(s, defn, tomorrow).spent == 0
    s, alerts2 = apply_costed(s, defn, [(0, 1, costed("e1", "6", tomorrow))], tomorrow)
    assert [a.threshold for a in alerts2] == [50]
    assert alerts2[0].alert_id != alerts[0].alert_id
    assert s.spent == 6 and s.period_start == datetime(2025, 6, 11, tzinfo=UTC)
    assert s.reserved_total == 1  # in-flight reservations carry over


def test_late_and_future_events() -> None:
    defn = budget(period="day")
    tomorrow = T0 + timedelta(days=1)
    s, _ = reserve(new_state(defn), defn, request("r1", "2"), T0)
    # yesterday's event arriving after the rollover: settles, not counted today, no alert
    s, alerts = apply_costed(
        s, defn, [(0, 0, costed("late", "9", T0, reservation_id="r1"))], tomorrow
    )
    assert s.spent == 0 and s.reserved == {} and alerts == []
    assert s.late_events == 1 and s.late_amount == 9
    # a record dated in a future period counts in the current one (cannot reset it)
    s, _ = apply_costed(
        s, defn, [(0, 1, costed("fut", "1", tomorrow + timedelta(days=3)))], tomorrow
    )
    assert s.spent == 1 and s.period_start == datetime(2025, 6, 11, tzinfo=UTC)


def test_rolling_window_sums_days_and_rearms_thresholds() -> None:
    defn = budget(period="rolling", rolling_days=3)
    s = new_state(defn)
    d0 = datetime(2025, 6, 1, 10, tzinfo=UTC)
    s, a = apply_costed(s, defn, [(0, 0, costed("a", "6", d0))], d0)
    assert [x.threshold for x in a] == [50]
    s, a = apply_costed(
        s, defn, [(0, 1, costed("b", "1", d0 + timedelta(days=2)))], d0 + timedelta(days=2)
    )
    assert s.spent == 7 and a == []
    # day 3: day 0 leaves the window; spend 1 < 50%: the 50% threshold re-arms
    d3 = d0 + timedelta(days=3)
    assert status(s, defn, d3).spent == 1
    s, a = apply_costed(s, defn, [(0, 2, costed("c", "4.5", d3))], d3)
    assert s.spent == Decimal("5.5") and [x.threshold for x in a] == [50]
    assert set(s.day_buckets) == {(d0 + timedelta(days=2)).date(), d3.date()}
    # a record from a day still inside the window lands in that day's bucket
    d1 = d3 - timedelta(days=2)
    s, _ = apply_costed(s, defn, [(0, 3, costed("d", "1", d1))], d3)
    assert s.day_buckets[d1.date()] == 1 and s.spent == Decimal("6.5")
    # and one from before the window is late
    s, _ = apply_costed(s, defn, [(0, 4, costed("e", "1", d0))], d3)
    assert s.late_events == 1 and s.spent == Decimal("6.5")


def test_status_reports_bounds_and_percent() -> None:
    defn = budget()
    s, _ = apply_costed(new_state(defn), defn, [(0, 0, costed("e", "2.5"))], T0)
    s, _ = reserve(s, defn, request("r", "1"), T0)
    st_ = status(s, defn, T0)
    assert (st_.spent, st_.reserved, st_.remaining, st_.percent) == (
        Decimal("2.5"),
        Decimal(1),
        Decimal("6.5"),
        Decimal("25.00"),
    )
    assert st_.period_start == datetime(2025, 6, 1, tzinfo=UTC)
    assert st_.period_end == datetime(2025, 7, 1, tzinfo=UTC)
    assert st_.open_reservations == 1


def test_wrong_budget_or_naive_now_is_refused() -> None:
    defn = budget()
    with pytest.raises(ValueError, match="used with budget"):
        reserve(LedgerState(budget_id="other"), defn, request("r", "1"), T0)
    with pytest.raises(ValueError, match="timezone"):
        status(new_state(defn), defn, datetime(2025, 1, 1))


def test_state_format_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown ledger state format"):
        state_from_dict({"format": 99})


# ------------------------------------------------------------------ several budgets
def test_combine_decisions() -> None:
    a, b = budget(id="a", limit_usd=Decimal("5")), budget(id="b", limit_usd=Decimal("1"))
    req = request("r1", "2")
    sa, da = reserve(new_state(a), a, req, T0)
    _sb, db = reserve(new_state(b), b, req, T0)
    combined = combine_decisions([da, db])
    assert not combined.allowed and combined.reason == "budget_exceeded"
    assert combined.remaining == {"a": Decimal(3), "b": Decimal(1)}
    assert combined.max_affordable_usd == Decimal(1)
    sa = release(sa, "r1")  # the caller undoes the admitted part
    assert sa.reserved == {}
    ok = combine_decisions([reserve(new_state(a), a, request("r2", "1"), T0)[1]])
    assert ok.allowed and ok.reservation_id == "r2" and ok.budget_ids == ["a"]
    assert combine_decisions([]).allowed


# ------------------------------------------------------------------ property
AMOUNTS = st.decimals(min_value=Decimal("0"), max_value=Decimal("4"), places=3)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(0, 15), AMOUNTS, st.integers(1, 300)),
        st.tuples(st.just("settle"), st.integers(0, 15), AMOUNTS, st.integers(0, 2)),
        st.tuples(st.just("apply"), st.integers(0, 15), AMOUNTS, st.integers(0, 2)),
        st.tuples(st.just("expire"), st.integers(0, 15), AMOUNTS, st.integers(0, 2)),
        st.tuples(st.just("tick"), st.integers(0, 15), AMOUNTS, st.integers(1, 7200)),
        st.tuples(st.just("restart"), st.integers(0, 15), AMOUNTS, st.integers(0, 2)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(OPS, st.sampled_from(["hour", "day"]), st.booleans())
def test_reserved_never_negative_and_hard_reserve_never_oversubscribes(ops, period, replay):
    defn = budget(limit_usd=Decimal("10"), period=period)
    s = new_state(defn)
    now = T0
    offsets: dict[int, int] = {}
    applied: list[tuple[int, int, CostedUsage]] = []
    for kind, n, amount, extra in ops:
        if kind == "reserve":
            before = status(s, defn, now).spent  # after expiry/rollover at `now`
            s, d = reserve(s, defn, request(f"r{n}", str(amount), ttl_s=extra), now)
            if d.allowed and d.reason == "ok":
                assert s.spent == before
                assert s.spent + s.reserved_total <= defn.limit
        elif kind in ("settle", "apply"):
            part = extra
            offsets[part] = offsets.get(part, -1) + 1
            rec = costed(
                f"e{len(applied)}",
                str(amount),
                now,
                reservation_id=f"r{n}" if kind == "settle" else None,
            )
            item = (part, offsets[part], rec)
            applied.append(item)
            s, _ = apply_costed(s, defn, [item], now)
            if replay:
                s2, alerts = apply_costed(s, defn, applied[-3:], now)
                assert s2 == s and alerts == []
        elif kind == "expire":
            s = expire(s, now)
        elif kind == "tick":
            now += timedelta(seconds=extra)
        else:
            s = roundtrip(s)
        assert s.reserved_total >= 0
        assert all(h.amount >= 0 for h in s.reserved.values())
        assert s.spent >= 0
