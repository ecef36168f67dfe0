"""Pure parts of the control plane: record sequencing, replay dedup, alert mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pipeline.budgets.ledger import apply_costed
from pipeline.control import wire
from pipeline.control.registry import BudgetRegistry
from schemas.budgets import BudgetDefinition

DEFN = BudgetDefinition(
    id="b1", scope={"tenant": "acme"}, period="month", limit_usd=Decimal(1), thresholds=[50]
)
NOW = datetime(2026, 3, 10, tzinfo=UTC)


def rec(eid: str, cost: str) -> dict[str, object]:
    return {
        "event_id": eid,
        "ts": "2026-03-10T00:00:00.000Z",
        "cost_usd": cost,
        "priced": True,
        "input_tokens": 1,
        "output_tokens": 1,
        "reservation_id": None,
        "tenant": "acme",
    }


def test_records_of_one_message_get_increasing_seq() -> None:
    assert wire.seq(5, 0) < wire.seq(5, 999) < wire.seq(6, 0)


def test_recosted_duplicate_and_replayed_message_are_counted_once() -> None:
    state, recent = wire.decode_value(None, DEFN)
    first = [
        (0, wire.seq(7, i), wire.record_from_compact(wire.compact_record(rec(f"e{i}", "0.3"))))
        for i in range(2)
    ]
    state, alerts = apply_costed(state, DEFN, wire.dedup_records(first, recent), NOW)
    assert state.spent == Decimal("0.6") and len(alerts) == 1
    value = wire.encode_value(state, recent)
    state, recent = wire.decode_value(value, DEFN)
    # the same message replayed (watermark) and e1 re-costed at a new offset (recent ids)
    again = [*first, (0, wire.seq(9, 0), first[1][2])]
    state, alerts = apply_costed(state, DEFN, wire.dedup_records(again, recent), NOW)
    assert state.spent == Decimal("0.6") and alerts == []
    ev = wire.alert_event(
        apply_costed(wire.decode_value(None, DEFN)[0], DEFN, first, NOW)[1][0], DEFN
    )
    assert ev.tenant == "acme" and ev.data["threshold"] == 50 and ev.kind == "budget_threshold"


def test_recent_ids_are_bounded() -> None:
    r = wire.RecentIds(limit=3)
    for i in range(5):
        r.add(str(i))
    assert "4" in r and "1" not in r and len(r.to_list()) == 3


def test_registry_applies_definitions_and_tombstones() -> None:
    reg = BudgetRegistry()
    reg.apply("b1", DEFN.model_dump_json().encode())
    reg.apply("bad", b"{}")
    assert [d.id for d in reg.index.match({"tenant": "acme"})] == ["b1"]
    reg.apply("b1", None)
    assert len(reg) == 0 and reg.index.match({"tenant": "acme"}) == []
