"""Webhook and Slack delivery against a REAL HTTP receiver on 127.0.0.1.

The receiver is an aiohttp server on an ephemeral port that answers from a
script of status codes and keeps every request (headers and raw body).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from aiohttp import web

from pipeline.alerts.delivery import (
    AlertDeliverer,
    InMemoryDeliveredStore,
    backoff_delay,
    sign,
    verify_signature,
)
from pipeline.alerts.rules import Channel
from schemas.alerts import AlertEvent, WebhookDelivery
from tests.alerts.factory import T0

SECRET = "whsec-test"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    script: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    delay_s: float = 0.0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(url="")

    async def handle(request: web.Request) -> web.Response:
        state.requests.append(Received(dict(request.headers), await request.read()))
        if state.delay_s:
            await asyncio.sleep(state.delay_s)
        step = state.script.pop(0) if state.script else 200
        status, headers = step if isinstance(step, tuple) else (step, {})
        return web.Response(status=status, text="ok" if status < 300 else "nope", headers=headers)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}/hook"
    yield state
    await runner.cleanup()


class Recorder:
    def __init__(self) -> None:
        self.records: list[WebhookDelivery] = []
        self.sleeps: list[float] = []

    async def record(self, d: WebhookDelivery) -> None:
        self.records.append(d)

    async def sleep(self, s: float) -> None:  # backoff without waiting
        self.sleeps.append(s)


def make_alert(alert_id_key: str = "k") -> AlertEvent:
    return AlertEvent.build(
        kind="budget_threshold",
        tenant="acme",
        scope={"team": "ml"},
        severity="critical",
        title="acme crossed 90% of its monthly budget",
        text="Spent $900 of $1000.",
        data={"threshold_pct": 90, "spent_usd": "900.000000000"},
        ts=T0,
        key=(alert_id_key,),
    )


def hook(url: str, **kw: Any) -> Channel:
    args: dict[str, Any] = {
        "name": "ops",
        "type": "webhook",
        "url": url,
        "secret": SECRET,
        "max_attempts": 4,
        "backoff_base_s": 0.5,
        "backoff_max_s": 8.0,
        "timeout_s": 5.0,
    }
    args.update(kw)
    return Channel(**args)


@pytest.fixture
async def rec() -> Recorder:
    return Recorder()


@pytest.fixture
async def deliverer(rec: Recorder) -> AsyncIterator[AlertDeliverer]:
    d = AlertDeliverer(InMemoryDeliveredStore(), rec.record, sleep=rec.sleep, rng=random.Random(7))
    yield d
    await d.aclose()


async def test_500_then_200_delivers_once_and_records_both_attempts(
    receiver: Receiver, rec: Recorder, deliverer: AlertDeliverer
) -> None:
    receiver.script = [500, 200]
    alert = make_alert()
    attempts = await deliverer.deliver(alert, hook(receiver.url))
    assert [(a.attempt, a.status, a.http_status) for a in attempts] == [
        (1, "failed", 500),
        (2, "ok", 200),
    ]
    assert rec.records == attempts
    assert attempts[0].error.startswith("HTTP 500") and attempts[1].error == ""
    assert len({a.delivery_id for a in attempts}) == 2
    assert len(receiver.requests) == 2 and len(rec.sleeps) == 1
    assert 0 <= rec.sleeps[0] <= 0.5  # full jitter within base * 2**0
    ok = receiver.requests[-1]
    assert json.loads(ok.body) == alert.model_dump(mode="json")
    assert ok.headers["Idempotency-Key"] == alert.alert_id
    assert ok.headers["X-Tokenpipe-Delivery"] == attempts[1].delivery_id
    assert ok.headers["Content-Type"] == "application/json"
    ts, sig = ok.headers["X-Tokenpipe-Timestamp"], ok.headers["X-Tokenpipe-Signature"]
    assert sig.startswith("sha256=")
    assert verify_signature(SECRET, ts, ok.body, sig)
    assert not verify_signature("wrong-secret", ts, ok.body, sig)
    assert not verify_signature(SECRET, ts, ok.body + b" ", sig)  # body tampered
    stale = str(int(ts) - 301)
    assert not verify_signature(SECRET, stale, ok.body, sign(SECRET, stale, ok.body))
    assert verify_signature(SECRET, stale, ok.body, sign(SECRET, stale, ok.body), tolerance_s=600)
    assert not verify_signature(SECRET, "not-a-number", ok.body, sig)


async def test_4xx_is_not_retried(
    receiver: Receiver, rec: Recorder, deliverer: AlertDeliverer
) -> None:
    receiver.script = [400]
    attempts = await deliverer.deliver(make_alert(), hook(receiver.url))
    assert [(a.status, a.http_status) for a in attempts] == [("dead", 400)]
    assert len(receiver.requests) == 1 and rec.sleeps == []


async def test_429_and_5xx_are_retried_then_dead_after_max_attempts(
    receiver: Receiver, rec: Recorder, deliverer: AlertDeliverer
) -> None:
    receiver.script = [429, 503, 502, 500, 200]
    attempts = await deliverer.deliver(make_alert(), hook(receiver.url, max_attempts=4))
    assert [(a.attempt, a.status, a.http_status) for a in attempts] == [
        (1, "failed", 429),
        (2, "failed", 503),
        (3, "failed", 502),
        (4, "dead", 500),
    ]
    assert rec.records == attempts
    assert len(receiver.requests) == 4  # the 5th answer (200) was never asked for
    caps = [0.5, 1.0, 2.0]
    assert len(rec.sleeps) == 3 and all(0 <= s <= c for s, c in zip(rec.sleeps, caps, strict=True))
    # Dead is final: a second call does not try again.
    assert await deliverer.deliver(make_alert(), hook(receiver.url)) == []


async def test_retry_after_is_honoured_up_to_backoff_max(
    receiver: Receiver, rec: Recorder, deliverer: AlertDeliverer
) -> None:
    receiver.script = [(429, {"Retry-After": "3"}), (503, {"Retry-After": "120"}), 200]
    attempts = await deliverer.deliver(make_alert(), hook(receiver.url, backoff_max_s=8.0))
    assert [a.status for a in attempts] == ["failed", "failed", "ok"]
    assert rec.sleeps[0] >= 3 and rec.sleeps[1] == 8.0


async def test_network_error_is_retried_and_recorded(
    rec: Recorder, deliverer: AlertDeliverer
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    attempts = await deliverer.deliver(
        make_alert(), hook(f"http://127.0.0.1:{port}/hook", max_attempts=3)
    )
    assert [(a.status, a.http_status) for a in attempts] == [
        ("failed", None),
        ("failed", None),
        ("dead", None),
    ]
    assert all("Connect" in a.error for a in attempts)


async def test_timeout_is_a_retryable_network_error(
    receiver: Receiver, deliverer: AlertDeliverer
) -> None:
    receiver.delay_s = 0.5
    attempts = await deliverer.deliver(
        make_alert(), hook(receiver.url, timeout_s=0.05, max_attempts=2)
    )
    assert [a.status for a in attempts] == ["failed", "dead"]
    assert "Timeout" in attempts[0].error


async def test_slack_payload_shape(receiver: Receiver, deliverer: AlertDeliverer) -> None:
    slack = Channel(name="slack", type="slack", url=receiver.url)
    alert = make_alert()
    attempts = await deliverer.deliver(alert, slack)
    assert [a.status for a in attempts] == ["ok"]
    got = receiver.requests[0]
    payload = json.loads(got.body)
    assert set(payload) == {"text", "blocks"}
    assert alert.title in payload["text"]
    assert [b["type"] for b in payload["blocks"]] == ["header", "section", "section", "context"]
    assert payload["blocks"][0]["text"] == {"type": "plain_text", "text": alert.title}
    fields = [f["text"] for f in payload["blocks"][1]["fields"]]
    assert "*Tenant*\nacme" in fields and "*team*\nml" in fields
    assert "X-Tokenpipe-Signature" not in got.headers  # Slack does not verify our HMAC


async def test_same_alert_twice_is_posted_once_even_concurrently_and_after_restart(
    receiver: Receiver, rec: Recorder
) -> None:
    store = InMemoryDeliveredStore()
    channel = hook(receiver.url)
    alert = make_alert()
    receiver.delay_s = 0.05
    async with httpx.AsyncClient() as client:
        first = AlertDeliverer(store, rec.record, client=client)
        results = await asyncio.gather(first.deliver(alert, channel), first.deliver(alert, channel))
        assert sorted(len(r) for r in results) == [0, 1]
        assert await first.deliver(alert, channel) == []
        # A new deliverer over the same store (a restarted worker) does not re-send.
        restarted = AlertDeliverer(store, rec.record, client=client)
        assert await restarted.deliver(alert, channel) == []
        # A different alert, or the same alert to another channel, is sent.
        other = replace(channel, name="ops2")
        sent = await restarted.dispatch(alert, [channel, other])
        assert {k: len(v) for k, v in sent.items()} == {"ops": 0, "ops2": 1}
        assert len(await restarted.deliver(make_alert("other"), channel)) == 1
    assert len(receiver.requests) == 3
    assert [r.status for r in rec.records] == ["ok", "ok", "ok"]
    assert store.outcomes[(alert.alert_id, "ops")] == "ok"


async def test_configured_headers_are_sent_but_cannot_override_signature(
    receiver: Receiver, deliverer: AlertDeliverer
) -> None:
    ch = hook(receiver.url, headers={"X-Team": "platform", "X-Tokenpipe-Signature": "forged"})
    await deliverer.deliver(make_alert(), ch)
    got = receiver.requests[0]
    assert got.headers["X-Team"] == "platform"
    assert verify_signature(
        SECRET, got.headers["X-Tokenpipe-Timestamp"], got.body, got.headers["X-Tokenpipe-Signature"]
    )


async def test_failing_recorder_does_not_change_delivery(receiver: Receiver) -> None:
    def broken(_: WebhookDelivery) -> None:
        raise RuntimeError("clickhouse down")

    d = AlertDeliverer(InMemoryDeliveredStore(), broken)
    try:
        attempts = await d.deliver(make_alert(), hook(receiver.url))
    finally:
        await d.aclose()
    assert [a.status for a in attempts] == ["ok"] and d.record_errors == 1


def test_backoff_is_full_jitter_within_exponential_cap() -> None:
    rng = random.Random(1)
    for attempt in range(1, 10):
        cap = min(30.0, 0.5 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(200)]
        assert all(0 <= x <= cap for x in delays)
        assert max(delays) > cap * 0.8 and min(delays) < cap * 0.2  # spread, not fixed


def test_signature_is_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k", 1700000000, body) == f"sha256={expected}"
    assert verify_signature("k", "1700000000", body, f"sha256={expected}", now=1700000100)
    assert not verify_signature(
        "k", "1700000000", body, f"sha256={expected}", now=time.time()
    )  # stale
