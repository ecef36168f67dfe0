"""The ClickHouse sink: insert-then-ack, replay dedup, retry while ClickHouse fails."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from pipeline.costing.pricing import PriceCatalog
from pipeline.dedup import DedupWindow
from pipeline.demo import DemoConfig, DemoTraffic, encode_batch
from pipeline.processors.costing import CostingProcessor, InMessage
from pipeline.processors.sink import Backoff, BatchWriter, prepare, write_blocking
from pipeline.store import Store


def costed_values(n: int, per_message: int = 100, seed: int = 1) -> list[bytes]:
    """``usage.costed`` message values for n demo events, as the costing processor makes them."""
    traffic = DemoTraffic(DemoConfig(seed=seed))
    events = [traffic.event(i, n) for i in range(n)]
    proc = CostingProcessor(PriceCatalog(), DedupWindow(3600))
    msgs = [
        InMessage(encode_batch(events[i : i + per_message]), "usage.events", 0, i)
        for i in range(0, n, per_message)
    ]
    from pipeline.processors.costing import encode_costed

    result = proc.process(msgs)
    return [
        value
        for records in result.costed.values()
        for value, _headers in encode_costed(records, per_message)
    ]


def totals(store: Store, table: str = "usage_raw") -> tuple[int, Decimal, int]:
    calls = "count()" if table == "usage_raw" else "sum(calls)"
    (row,) = store.query_rows(f"SELECT {calls}, sum(cost_usd), sum(input_tokens) FROM {table}")
    return int(row[0]), Decimal(row[1]), int(row[2])


def expected(values: list[bytes]) -> tuple[int, Decimal, int]:
    recs = {r["event_id"]: r for v in values for r in json.loads(v)}
    return (
        len(recs),
        sum((Decimal(r["cost_usd"]) for r in recs.values()), Decimal(0)),
        sum(r["input_tokens"] for r in recs.values()),
    )


def test_prepare_drops_in_batch_duplicates_and_counts_garbage() -> None:
    values = costed_values(50)
    batch = prepare([*values, values[0], b"not json", b'[{"no_id": 1}]'])
    assert len(batch.records) == 50
    assert batch.duplicates_in_batch == len(json.loads(values[0]))
    assert batch.malformed == 2


def test_replayed_batch_is_written_once_in_raw_and_rollups(store: Store) -> None:
    values = costed_values(2000)
    want = expected(values)
    first = write_blocking(store, "usage_raw", prepare(values), max_rows=700)
    assert first.inserted == 2000
    # a crash after the insert but before the commit: the same messages come again
    replay = write_blocking(store, "usage_raw", prepare(values[3:]), max_rows=700)
    assert replay.inserted == 0
    assert replay.skipped_existing == sum(len(json.loads(v)) for v in values[3:])
    assert totals(store) == want
    for rollup in ("usage_rollup_1m", "usage_rollup_1h", "usage_rollup_1d"):
        assert totals(store, rollup) == want, rollup


async def test_insert_failures_are_retried_and_nothing_is_acked_until_success(
    store: Store,
) -> None:
    values = costed_values(500)
    store.command("RENAME TABLE usage_raw TO usage_raw_away")  # ClickHouse says: unknown table
    failures: list[BaseException] = []
    acked: list[int] = []

    def on_failure(exc: BaseException) -> None:
        failures.append(exc)
        assert acked == [], "acked while the insert was failing"
        if len(failures) == 4:  # ClickHouse comes back
            store.command("RENAME TABLE usage_raw_away TO usage_raw")

    async def ack() -> None:
        acked.append(len(failures))

    writer = BatchWriter(
        store, "usage_raw", 10_000, backoff=Backoff(0.01, 0.05), on_failure=on_failure
    )
    result = await writer.write_and_ack(values, ack)
    assert result is not None and result.attempts == 5
    assert acked == [4]
    assert "usage_raw" in str(failures[0])
    assert totals(store) == expected(values)


async def test_a_stopping_worker_leaves_a_failing_batch_unacked(store: Store) -> None:
    values = costed_values(100)
    store.command("RENAME TABLE usage_raw TO usage_raw_away")
    attempts = 0

    def on_failure(exc: BaseException) -> None:
        nonlocal attempts
        attempts += 1

    async def ack() -> None:
        raise AssertionError("must not ack a batch that was never written")

    writer = BatchWriter(
        store, "usage_raw", 10_000, backoff=Backoff(0.01, 0.02), on_failure=on_failure
    )
    result = await asyncio.wait_for(
        writer.write_and_ack(values, ack, should_stop=lambda: attempts >= 3), timeout=10
    )
    assert result is None
    store.command("RENAME TABLE usage_raw_away TO usage_raw")
    assert totals(store)[0] == 0


class CountingStore:
    """Delegates to the real store and counts INSERT statements."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.inserts: list[int] = []

    def existing_event_ids(self, keys):  # type: ignore[no-untyped-def]
        return self.store.existing_event_ids(keys)

    def existing_event_ids_in_ranges(self, *args):  # type: ignore[no-untyped-def]
        return self.store.existing_event_ids_in_ranges(*args)

    def insert_json_each_row(self, table, body, settings=None):  # type: ignore[no-untyped-def]
        self.inserts.append(len(json.loads(body)))
        self.store.insert_json_each_row(table, body, settings)


@pytest.mark.parametrize(("max_rows", "inserts"), [(1, 130), (64, 3), (10_000, 1)])
def test_batches_are_split_at_max_rows(store: Store, max_rows: int, inserts: int) -> None:
    values = costed_values(130)
    counting = CountingStore(store)
    result = write_blocking(counting, "usage_raw", prepare(values), max_rows=max_rows)
    assert result.inserted == 130
    assert len(counting.inserts) == inserts
    assert max(counting.inserts) <= max_rows
    assert totals(store) == expected(values)


def indexed_messages(n: int, seed: int = 2) -> list:
    """Messages exactly as the costing agent produces them: values plus index headers."""
    from pipeline.processors.costing import encode_costed
    from pipeline.processors.sink import CostedMessage

    traffic = DemoTraffic(DemoConfig(seed=seed))
    events = [traffic.event(i, n) for i in range(n)]
    result = CostingProcessor(PriceCatalog(), DedupWindow(3600)).process(
        [InMessage(encode_batch(events), "usage.events", 0, 0)]
    )
    return [
        CostedMessage.from_kafka(value, tenant.encode(), headers)
        for tenant, records in result.costed.items()
        for value, headers in encode_costed(records, per_message=97)
    ]


def test_indexed_messages_take_the_fast_path_and_replays_fall_back(store: Store) -> None:
    from pipeline.processors.sink import write_messages

    msgs = indexed_messages(1500)
    assert all(m.indexed for m in msgs)
    want = expected([m.value for m in msgs])
    first = write_messages(store, "usage_raw", msgs, max_rows=400)
    assert first.fast_path and first.inserted == 1500
    replay = write_messages(store, "usage_raw", msgs[2:], max_rows=400)
    assert not replay.fast_path and replay.inserted == 0
    assert replay.skipped_existing == sum(len(m.ids) for m in msgs[2:])
    assert totals(store) == want
    assert totals(store, "usage_rollup_1h") == want


def test_duplicate_across_messages_in_one_batch_counts_once(store: Store) -> None:
    from pipeline.processors.sink import write_messages

    msgs = indexed_messages(300)
    result = write_messages(store, "usage_raw", [*msgs, msgs[0]], max_rows=10_000)
    assert not result.fast_path
    assert result.duplicates_in_batch == len(msgs[0].ids)
    assert totals(store) == expected([m.value for m in msgs])
