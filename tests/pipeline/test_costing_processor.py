"""The costing processor: validation, DLQ records, dedup, pricing, output contract."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from pipeline.costing.pricing import PriceCatalog
from pipeline.dedup import DedupWindow
from pipeline.demo import MALFORMED_KINDS, DemoConfig, DemoTraffic, encode_batch
from pipeline.processors.costing import CostingProcessor, InMessage
from schemas.usage import CostedUsage


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog()


def proc(catalog: PriceCatalog, horizon: float = 3600) -> CostingProcessor:
    now = [1000.0]
    return CostingProcessor(catalog, DedupWindow(horizon), clock=lambda: now[0])


def msg(value: bytes | str, offset: int = 0) -> InMessage:
    raw = value.encode() if isinstance(value, str) else value
    return InMessage(raw, "usage.events", 2, offset)


GOOD = {
    "event_id": "e1",
    "ts": "2026-11-20T10:00:00Z",
    "tenant": "acme",
    "model": "gpt-4o",
    "provider": "openai",
    "input_tokens": 1_000_000,
    "output_tokens": 100_000,
    "cache_read_tokens": 500_000,
}


def test_output_records_satisfy_the_costed_usage_contract(catalog: PriceCatalog) -> None:
    traffic = DemoTraffic(DemoConfig(seed=3))
    events = [traffic.event(i, 300) for i in range(300)]
    result = proc(catalog).process([msg(encode_batch(events))])
    records = [r for recs in result.costed.values() for r in recs]
    assert len(records) == 300
    for tenant, recs in result.costed.items():
        assert {r.as_dict()["tenant"] for r in recs} == {tenant}
    for r in records:
        c = CostedUsage.model_validate_json(r.json)  # the bytes that go to Kafka
        assert (c.event_id, c.ts) == (r.event_id, r.ts)
        assert c.provider  # inferred from the catalog when the event had none
        parts = (
            c.input_cost_usd + c.cache_read_cost_usd + c.cache_write_cost_usd + c.output_cost_usd
        )
        assert c.cost_usd == parts
        assert c.priced == (c.price_source != "none")


def test_known_price_gpt_4o_with_cache(catalog: PriceCatalog) -> None:
    # gpt-4o: $2.50/M input, $1.25/M cached input, $10/M output.
    # 500k uncached * 2.5 + 500k cached * 1.25 + 100k out * 10 = 1.25 + 0.625 + 1.0
    result = proc(catalog).process([msg(json.dumps(GOOD))])
    (costed,) = result.costed["acme"]
    rec = costed.as_dict()
    assert Decimal(rec["cost_usd"]) == Decimal("2.875")
    assert rec["priced"] is True


def test_unknown_model_is_kept_unpriced_and_counted(catalog: PriceCatalog) -> None:
    event = dict(GOOD, model="my-private-llm", provider="")
    result = proc(catalog).process([msg(json.dumps(event))])
    (costed,) = result.costed["acme"]
    rec = costed.as_dict()
    assert rec["priced"] is False
    assert rec["unpriced_reason"]
    assert Decimal(rec["cost_usd"]) == 0
    assert result.unpriced == 1


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_each_kind_of_bad_event_goes_to_the_dlq_with_its_reason(
    catalog: PriceCatalog, kind: str
) -> None:
    bad = DemoTraffic().malformed(kind)
    value = bad if isinstance(bad, bytes) else json.dumps([GOOD, bad]).encode()
    result = proc(catalog).process([msg(value, offset=41)])
    assert len(result.dead_letters) == 1
    dl = result.dead_letters[0]
    assert (dl.source_topic, dl.partition, dl.offset) == ("usage.events", 2, 41)
    assert dl.original() == value
    assert dl.errors and all(e["message"] for e in dl.errors)
    assert sum(result.rejected.values()) == 1
    # the good event in the same message is not lost
    assert result.costed_count == (0 if kind == "bad_json" else 1)


def test_wrong_types_name_every_field(catalog: PriceCatalog) -> None:
    bad = dict(GOOD, input_tokens="many", output_tokens=-1, tenant=5)
    result = proc(catalog).process([msg(json.dumps(bad))])
    (dl,) = result.dead_letters
    assert {e["path"] for e in dl.errors} == {"input_tokens", "output_tokens", "tenant"}


def test_duplicates_within_the_horizon_are_costed_once(catalog: PriceCatalog) -> None:
    p = proc(catalog)
    first = p.process([msg(json.dumps(GOOD)), msg(json.dumps([GOOD, GOOD]))])
    again = p.process([msg(json.dumps(GOOD))])
    assert first.costed_count == 1 and first.duplicates == 2
    assert again.costed_count == 0 and again.duplicates == 1


def test_dedup_forgets_after_the_horizon() -> None:
    window = DedupWindow(10)
    assert window.add_new("a", 0.0)
    assert not window.add_new("a", 9.9)
    assert window.add_new("a", 10.0)


def test_dedup_window_is_bounded() -> None:
    window = DedupWindow(3600, max_ids=3)
    for i in range(5):
        assert window.add_new(str(i), 0.0)
    assert len(window) == 3 and window.evicted == 2
    assert window.add_new("0", 0.0)  # forgotten: counted as new again
