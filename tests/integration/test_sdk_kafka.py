"""The emit SDK against the real broker: every event arrives once, keyed by its tenant."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer

from pipeline.sdk import AsyncEmitter, Emitter

from .conftest import TopicFactory

N = 10_000
TENANTS = [f"tenant-{i}" for i in range(7)]


def event(i: int) -> dict[str, Any]:
    return {
        "event_id": f"ev-{i}",
        "tenant": TENANTS[i % len(TENANTS)],
        "model": "gpt-4o-mini",
        "input_tokens": 100 + i,
        "output_tokens": i % 50,
    }


async def consume_all(
    bootstrap: str, topic: str, expected: int, timeout: float = 60.0
) -> list[Any]:
    """Every record of ``topic`` (reads until ``expected`` events, then a little more)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        events = 0
        while events < expected and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(batch)
                events += sum(len(json.loads(r.value)) for r in batch)
        for batch in (await consumer.getmany(timeout_ms=500)).values():  # any extra?
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


def check(records: list[Any], expected_ids: set[str]) -> None:
    seen: Counter[str] = Counter()
    for r in records:
        body = json.loads(r.value)
        assert isinstance(body, list) and body, "value must be a non-empty JSON array"
        assert len(r.value) <= 512 * 1024 + 1024
        for e in body:
            assert r.key == e["tenant"].encode(), "message key must be the tenant of its events"
            seen[e["event_id"]] += 1
    assert set(seen) == expected_ids
    assert max(seen.values()) == 1, "an event arrived twice"
    assert len(records) < len(expected_ids) / 10, "events must travel in batches"


async def test_async_emitter_delivers_everything_once(
    kafka_bootstrap: str, create_topic: TopicFactory
) -> None:
    topic = await create_topic("usage.events", partitions=4)
    emitter = AsyncEmitter(kafka_bootstrap, topic, defaults={"feature": "it"})
    async with emitter:
        for i in range(N):
            assert emitter.record(event(i))
            if i % 1000 == 0:
                await asyncio.sleep(0)  # a real app yields now and then
    # __aexit__ closed it: close() must have flushed everything
    stats = emitter.stats
    assert (stats.sent, stats.lost, stats.buffered, stats.dropped_invalid) == (N, 0, 0, 0)
    records = await consume_all(kafka_bootstrap, topic, N)
    check(records, {f"ev-{i}" for i in range(N)})
    sample = json.loads(records[0].value)[0]
    assert sample["feature"] == "it" and sample["ts"]


async def test_sync_emitter_from_threads_delivers_everything_once(
    kafka_bootstrap: str, create_topic: TopicFactory
) -> None:
    topic = await create_topic("usage.events", partitions=4)
    emitter = Emitter(kafka_bootstrap, topic)
    threads = 4

    def produce(part: int) -> None:
        for i in range(part, N, threads):
            assert emitter.record(event(i))

    workers = [threading.Thread(target=produce, args=(p,)) for p in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert await asyncio.to_thread(emitter.flush, 30)
    assert emitter.stats.sent == N
    assert await asyncio.to_thread(emitter.close) == 0
    assert emitter.stats.recorded == N and emitter.stats.lost == 0
    records = await consume_all(kafka_bootstrap, topic, N)
    check(records, {f"ev-{i}" for i in range(N)})


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"127.0.0.1:{port}"


async def test_broker_down_async_emitter_reports_loss() -> None:
    emitter = AsyncEmitter(closed_port(), "usage.events")
    await emitter.start()
    for i in range(500):
        assert emitter.record(event(i)) is True
    assert emitter.record(object()) is True  # still never raises
    assert await emitter.flush(0.5) is False
    started = time.monotonic()
    lost = await emitter.close(timeout=2.0)
    assert time.monotonic() - started < 4.0
    assert lost == 501 - emitter.stats.dropped_invalid and lost >= 500
    assert emitter.stats.lost == lost and emitter.stats.buffered == 0
    assert emitter.stats.send_errors >= 1
    assert emitter.record(event(0)) is False


def test_broker_down_sync_emitter_reports_loss() -> None:
    emitter = Emitter(closed_port(), "usage.events", close_timeout=1.5)
    for i in range(300):
        assert emitter.record(event(i)) is True
    started = time.monotonic()
    assert emitter.close() == 300
    assert time.monotonic() - started < 4.0
    assert emitter.stats.lost == 300
    assert emitter.record(event(1)) is False
