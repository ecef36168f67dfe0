"""The faust agents through ``agent.test_context()`` (no broker): ack discipline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import pytest

from pipeline.app import create_app
from pipeline.config import Settings
from pipeline.costing.pricing import PriceCatalog
from pipeline.store import Store
from tests.pipeline.test_sink import costed_values, expected, totals


def _agent(app: faust.App, name: str) -> faust.types.AgentT:
    return next(a for a in app.agents.values() if a.name.endswith(name))


async def _wait_for(cond, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.fixture
def app(store: Store, tmp_path: Path) -> faust.App:
    settings = Settings(data_dir=tmp_path, batch_max_seconds=0.05, batch_max_rows=10_000)
    return create_app(settings, store, catalog=PriceCatalog())


async def test_take_would_ack_a_failed_batch_which_is_why_the_sink_uses_noack_take() -> None:
    """The hazard itself: ``Stream.take()`` acks in ``finally`` even when the body raised."""
    probe = faust.App("probe-take", store="memory://", web_enabled=False)
    topic = probe.topic("x", value_type=bytes, value_serializer="raw")

    @probe.agent(topic)
    async def failing(stream):  # type: ignore[no-untyped-def]
        async for _batch in stream.take(3, 0.05):
            raise RuntimeError("insert failed")

    async with failing.test_context() as agent:
        events = [await agent.put(b"v%d" % i) for i in range(3)]
        await asyncio.sleep(0.3)
        assert all(e.message.acked for e in events)


async def test_sink_acks_nothing_while_clickhouse_fails_then_everything_once(
    app: faust.App, store: Store
) -> None:
    values = costed_values(300, per_message=50)
    store.command("RENAME TABLE usage_raw TO usage_raw_away")
    metrics = app.tokenpipe.metrics  # type: ignore[attr-defined]
    async with _agent(app, "sink").test_context() as agent:
        events = [await agent.put(v, key=b"k") for v in values]
        await _wait_for(lambda: metrics.sink_failures._value.get() >= 2)
        assert not any(e.message.acked for e in events)
        store.command("RENAME TABLE usage_raw_away TO usage_raw")
        await _wait_for(lambda: all(e.message.acked for e in events))
    assert totals(store) == expected(values)


async def test_sink_stopped_during_an_outage_leaves_the_batch_unacked(
    app: faust.App, store: Store
) -> None:
    values = costed_values(100, per_message=50)
    store.command("RENAME TABLE usage_raw TO usage_raw_away")
    metrics = app.tokenpipe.metrics  # type: ignore[attr-defined]
    async with _agent(app, "sink").test_context() as agent:
        events = [await agent.put(v, key=b"k") for v in values]
        await _wait_for(lambda: metrics.sink_failures._value.get() >= 1)
    # the agent has stopped (generator closed) without ever writing the batch
    assert not any(e.message.acked for e in events)
    store.command("RENAME TABLE usage_raw_away TO usage_raw")
    assert totals(store)[0] == 0
