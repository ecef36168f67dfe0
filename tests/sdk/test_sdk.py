"""Emit SDK without a broker: record() contract, buffer policies, batching, helpers.

The Kafka boundary is ``AsyncEmitter._deliver``; ``CapturingEmitter`` replaces only
that method so the real buffer / drain / encode path runs. Delivery to a real broker is
tested in ``tests/integration/test_sdk_kafka.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.sdk import (
    AsyncEmitter,
    AsyncRecordingStream,
    Message,
    RecordingStream,
    batch_by_tenant,
    encode_event,
    openai_stream_options,
    record_anthropic,
    record_openai,
    wrap_anthropic_stream,
    wrap_openai_stream,
)
from schemas.usage import UsageEvent

FIXTURES = Path(__file__).resolve().parents[1] / "costing" / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def ev(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tenant": "acme",
        "model": "gpt-4o",
        "input_tokens": 10,
        "output_tokens": 5,
    }
    base.update(kw)
    return base


class CapturingEmitter(AsyncEmitter):
    """An AsyncEmitter whose delivery step keeps the messages instead of producing them."""

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("linger_s", 0.01)
        super().__init__("127.0.0.1:1", "usage.events", **kw)
        self.messages: list[Message] = []

    async def _deliver(self, messages: list[Message]) -> None:
        self.messages.extend(messages)
        for m in messages:
            self._settle(sent=m.count)

    def events(self) -> list[dict[str, Any]]:
        return [e for m in self.messages for e in json.loads(m.value)]


class ListRecorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def record(self, event: Any) -> bool:
        self.events.append(event)
        return True


# --------------------------------------------------------------------------- encode_event


def test_encode_fills_ts_and_event_id_and_merges_defaults() -> None:
    at = datetime(2025, 3, 1, 12, 0, tzinfo=UTC).timestamp()
    tenant, raw = encode_event(
        {"model": "gpt-4o", "input_tokens": 3, "output_tokens": 1, "team": "mine"},
        at,
        {"tenant": "acme", "team": "default-team", "feature": "chat"},
    )
    data = json.loads(raw)
    assert tenant == "acme"
    assert data["tenant"] == "acme" and data["feature"] == "chat"
    assert data["team"] == "mine"  # the event's own value wins over the default
    assert datetime.fromisoformat(data["ts"].replace("Z", "+00:00")) == datetime.fromtimestamp(
        at, UTC
    )
    assert len(data["event_id"]) == 36  # uuid4
    UsageEvent.model_validate(data)


def test_encode_keeps_given_ts_and_event_id_and_accepts_models() -> None:
    ts = datetime(2024, 1, 2, tzinfo=UTC)
    model = UsageEvent(
        event_id="e-1", ts=ts, tenant="t", model="m", input_tokens=1, output_tokens=1
    )
    tenant, raw = encode_event(model, 0.0, {"feature": "f", "tenant": "other"})
    data = json.loads(raw)
    assert (tenant, data["event_id"], data["feature"]) == ("t", "e-1", "f")
    assert data["ts"].startswith("2024-01-02T00:00:00")


@pytest.mark.parametrize(
    "item",
    [
        None,
        42,
        "x",
        ["a"],
        {},
        ev(input_tokens=-1),
        ev(model=""),
        ev(extra=object()),
        ev(attributes={"k": object()}),
        ev(cache_read_tokens=11),
    ],
)
def test_encode_rejects_invalid(item: Any) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any error: the emitter counts it
        encode_event(item, 0.0, None)


# --------------------------------------------------------------------------- batching


def test_batch_groups_by_tenant_in_order() -> None:
    items = [("a", b'{"i":1}'), ("b", b'{"i":2}'), ("a", b'{"i":3}')]
    msgs = batch_by_tenant(items)
    assert [(m.key, json.loads(m.value), m.count) for m in msgs] == [
        (b"a", [{"i": 1}, {"i": 3}], 2),
        (b"b", [{"i": 2}], 1),
    ]


def test_batch_caps_message_size() -> None:
    raw = b'{"p":"' + b"x" * 92 + b'"}'  # 100 bytes
    msgs = batch_by_tenant([("t", raw)] * 25, max_bytes=1000)
    assert sum(m.count for m in msgs) == 25
    assert all(len(m.value) <= 1000 for m in msgs)
    assert [m.count for m in msgs] == [9, 9, 7]  # 2 + 9*100 + 8 commas = 910; a 10th: 1011
    big = batch_by_tenant([("t", b'"' + b"y" * 2000 + b'"'), ("t", b"1")], max_bytes=1000)
    assert [m.count for m in big] == [1, 1]  # an oversize event travels alone


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "ü", "d"]), st.integers(0, 10**6)), max_size=300),
    st.integers(20, 400),
)
def test_batch_property(items: list[tuple[str, int]], cap: int) -> None:
    encoded = [(t, json.dumps({"t": t, "n": n}).encode()) for t, n in items]
    msgs = batch_by_tenant(encoded, max_bytes=cap)
    per_tenant: dict[str, list[Any]] = {}
    for m in msgs:
        body = json.loads(m.value)
        assert len(body) == m.count >= 1
        assert len(m.value) <= cap or m.count == 1
        assert {e["t"] for e in body} == {m.key.decode()}
        per_tenant.setdefault(m.key.decode(), []).extend(body)
    expected: dict[str, list[Any]] = {}
    for t, n in items:
        expected.setdefault(t, []).append({"t": t, "n": n})
    assert per_tenant == expected  # nothing lost, nothing duplicated, order kept


# --------------------------------------------------------------------------- record()


GARBAGE: list[Any] = [
    None,
    0,
    "str",
    b"bytes",
    [1, 2],
    {"x": object()},
    object(),
    ev(extra={1, 2}),
    ev(ts="not a time"),
    float("nan"),
]


async def test_record_never_raises_and_counts_invalid() -> None:
    em = CapturingEmitter()
    async with em:
        for item in GARBAGE:
            assert em.record(item) is True  # accepted; judged in the background
        assert em.record(ev()) is True
        assert await em.flush(5)
    assert em.stats.dropped_invalid == len(GARBAGE)
    assert em.stats.sent == 1 and em.stats.buffered == 0 and em.stats.lost == 0
    assert em.record(ev()) is False  # after close
    assert em.record(object()) is False
    assert em.stats.dropped_closed == 2


def test_record_survives_a_hostile_dict() -> None:
    class Evil(dict):
        def copy(self) -> Any:
            raise RuntimeError("boom")

        def __len__(self) -> int:
            raise RuntimeError("boom")

    em = AsyncEmitter("127.0.0.1:1", "t")
    assert em.record(Evil()) in (True, False)


def test_drop_newest_when_full(caplog: pytest.LogCaptureFixture) -> None:
    em = AsyncEmitter("127.0.0.1:1", "t", max_buffer=3, on_full="drop_newest")
    with caplog.at_level(logging.WARNING, logger="pipeline.sdk"):
        results = [em.record(ev(event_id=str(i))) for i in range(10)]
    assert results == [True] * 3 + [False] * 7
    assert em.stats.dropped_full == 7 and em.stats.recorded == 3 and em.stats.buffered == 3
    assert [item["event_id"] for item, _ in em._buffer] == ["0", "1", "2"]
    full = [r for r in caplog.records if "buffer full" in r.getMessage()]
    assert len(full) == 1  # rate-limited: once per 10 s


def test_drop_oldest_when_full(caplog: pytest.LogCaptureFixture) -> None:
    em = AsyncEmitter("127.0.0.1:1", "t", max_buffer=3, on_full="drop_oldest")
    with caplog.at_level(logging.WARNING, logger="pipeline.sdk"):
        results = [em.record(ev(event_id=str(i))) for i in range(10)]
    assert results == [True] * 10
    assert em.stats.dropped_full == 7 and em.stats.recorded == 10 and em.stats.buffered == 3
    assert [item["event_id"] for item, _ in em._buffer] == ["7", "8", "9"]
    assert len([r for r in caplog.records if "buffer full" in r.getMessage()]) == 1


def test_record_copies_dicts() -> None:
    em = AsyncEmitter("127.0.0.1:1", "t")
    event = ev()
    em.record(event)
    event["tenant"] = "changed"
    assert em._buffer[0][0]["tenant"] == "acme"


async def test_emitter_batches_by_tenant_and_fills_defaults() -> None:
    em = CapturingEmitter(defaults={"team": "core", "feature": "search"}, max_batch=50)
    async with em:
        for i in range(120):
            em.record(ev(tenant=f"t{i % 3}", event_id=f"e{i}", input_tokens=i))
        assert await em.flush(5)
    events = em.events()
    assert sorted(e["event_id"] for e in events) == sorted(f"e{i}" for i in range(120))
    for m in em.messages:
        assert {e["tenant"] for e in json.loads(m.value)} == {m.key.decode()}
    assert all(e["team"] == "core" and e["feature"] == "search" for e in events)
    assert all(e["ts"] for e in events)
    for t in range(3):  # order within a tenant is the record() order
        ids = [int(e["event_id"][1:]) for e in events if e["tenant"] == f"t{t}"]
        assert ids == sorted(ids)


async def test_max_batch_wakes_the_drain_before_linger() -> None:
    em = CapturingEmitter(linger_s=30.0, max_batch=10)
    async with em:
        for _ in range(10):
            em.record(ev())
        for _ in range(100):
            if em.stats.sent == 10:
                break
            await asyncio.sleep(0.01)
        assert em.stats.sent == 10


async def test_close_flushes_and_records_before_start() -> None:
    em = CapturingEmitter()
    for i in range(5):
        assert em.record(ev(event_id=f"x{i}"))
    await em.start()
    assert await em.close(5) == 0
    assert em.stats.sent == 5 and len(em.events()) == 5


def test_bad_options() -> None:
    with pytest.raises(ValueError):
        AsyncEmitter("h:1", "t", on_full="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AsyncEmitter("h:1", "t", max_buffer=0)


# --------------------------------------------------------------------------- helpers


def as_obj(data: Any) -> Any:
    """Nested dicts to attribute objects (the SDKs' response objects' shape)."""
    if isinstance(data, dict):
        return SimpleNamespace(**{k: as_obj(v) for k, v in data.items()})
    if isinstance(data, list):
        return [as_obj(v) for v in data]
    return data


def valid(event: dict[str, Any]) -> UsageEvent:
    return UsageEvent.model_validate(json.loads(encode_event(event, 0.0, None)[1]))


@pytest.mark.parametrize("shape", [dict, as_obj])
def test_record_openai(shape: Any) -> None:
    rec = ListRecorder()
    response = shape(fixture("openai_chat_stream_final_chunk.json"))
    assert record_openai(rec, response, tenant="acme", feature="chat", latency_ms=12)
    (event,) = rec.events
    e = valid(event)
    assert (e.event_id, e.provider, e.model) == ("chatcmpl-123", "openai", "gpt-4o-mini-2024-07-18")
    assert (e.input_tokens, e.cache_read_tokens, e.output_tokens) == (2048, 1536, 120)
    assert (e.tenant, e.feature, e.latency_ms) == ("acme", "chat", 12)


@pytest.mark.parametrize("shape", [dict, as_obj])
def test_record_anthropic(shape: Any) -> None:
    rec = ListRecorder()
    assert record_anthropic(rec, shape(fixture("anthropic_message.json")), tenant="acme")
    e = valid(rec.events[0])
    assert e.event_id == "msg_013Zva2CMHLNnXjNJJKqJ2EF" and e.provider == "anthropic"
    assert e.input_tokens == 21 + 188086 and e.cache_write_tokens == 188086
    assert e.output_tokens == 393


def test_helpers_never_raise() -> None:
    em = AsyncEmitter("127.0.0.1:1", "t")
    for bad in [None, 1, {"id": "x"}, object(), {"usage": {"prompt_tokens": "many"}}]:
        assert record_openai(em, bad, tenant="a") is False
        assert record_anthropic(em, bad, tenant="a") is False
    assert em.stats.dropped_invalid == 10 and em.stats.recorded == 0


def test_openai_stream_options() -> None:
    base = {"model": "gpt-4o", "stream_options": {"other": 1}}
    out = openai_stream_options(base)
    assert out["stream"] is True
    assert out["stream_options"] == {"other": 1, "include_usage": True}
    assert base == {"model": "gpt-4o", "stream_options": {"other": 1}}  # not mutated
    assert openai_stream_options({"stream": False}) == {"stream": False}


def openai_chunks() -> list[dict[str, Any]]:
    first = {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": "Hi"}}],
        "usage": None,
    }
    second = {**first, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    return [first, second, fixture("openai_chat_stream_final_chunk.json")]


@pytest.mark.parametrize("shape", [dict, as_obj])
def test_wrap_openai_stream_sync(shape: Any) -> None:
    rec = ListRecorder()
    chunks = [shape(c) for c in openai_chunks()]
    wrapped = wrap_openai_stream(iter(chunks), rec, tenant="acme", user="u1")
    assert isinstance(wrapped, RecordingStream)
    out = list(wrapped)
    assert len(out) == len(chunks) and all(a is b for a, b in zip(out, chunks, strict=True))
    assert len(rec.events) == 1
    e = valid(rec.events[0])
    assert (e.input_tokens, e.cache_read_tokens, e.output_tokens) == (2048, 1536, 120)
    assert (e.event_id, e.user, e.tenant) == ("chatcmpl-123", "u1", "acme")
    assert e.latency_ms is not None
    with pytest.raises(StopIteration):
        next(wrapped)
    assert len(rec.events) == 1  # exactly once


async def test_wrap_openai_stream_async_responses_api() -> None:
    rec = ListRecorder()
    events = [
        as_obj({"type": "response.output_text.delta", "delta": "Hi"}),
        as_obj(fixture("openai_responses_completed_event.json")),
    ]

    async def stream() -> Any:
        for item in events:
            yield item

    wrapped = wrap_openai_stream(stream(), rec, tenant="acme", latency_ms=5)
    assert isinstance(wrapped, AsyncRecordingStream)
    out = [c async for c in wrapped]
    assert all(a is b for a, b in zip(out, events, strict=True))
    (event,) = rec.events
    e = valid(event)
    assert (e.event_id, e.model, e.input_tokens, e.output_tokens, e.latency_ms) == (
        "resp_123",
        "gpt-4.1-2025-04-14",
        300,
        25,
        5,
    )


def test_wrap_openai_stream_without_usage_records_nothing() -> None:
    rec = ListRecorder()
    assert len(list(wrap_openai_stream(iter(openai_chunks()[:2]), rec, tenant="a"))) == 2
    assert rec.events == []


@pytest.mark.parametrize("shape", [dict, as_obj])
async def test_wrap_anthropic_stream_sync_and_async(shape: Any) -> None:
    raw = [shape(e) for e in fixture("anthropic_stream_events.json")]
    rec = ListRecorder()
    out = list(wrap_anthropic_stream(iter(raw), rec, tenant="acme"))
    assert all(a is b for a, b in zip(out, raw, strict=True)) and len(out) == len(raw)

    async def stream() -> Any:
        for item in raw:
            yield item

    out2 = [c async for c in wrap_anthropic_stream(stream(), rec, tenant="acme")]
    assert len(out2) == len(raw)
    assert len(rec.events) == 2
    for event in rec.events:
        e = valid(event)
        assert e.event_id == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"
        assert e.model == "claude-opus-4-1-20250805" and e.provider == "anthropic"
        # message_delta counts are cumulative: 15, not 2 + 9 + 15; cache read inside input
        assert (e.input_tokens, e.cache_read_tokens, e.output_tokens) == (472 + 2048, 2048, 15)


def test_wrapped_stream_passes_attributes_and_errors_through() -> None:
    class Stream:
        response = "raw-http-response"

        def __init__(self) -> None:
            self.closed = False

        def __iter__(self) -> Any:
            yield {"type": "message_start"}  # malformed: no message; must not break
            raise ConnectionError("network")

        def close(self) -> None:
            self.closed = True

    rec = ListRecorder()
    s = Stream()
    wrapped = wrap_anthropic_stream(s, rec)
    assert wrapped.response == "raw-http-response"
    with pytest.raises(ConnectionError):
        list(wrapped)
    wrapped.close()
    assert s.closed and rec.events == []
