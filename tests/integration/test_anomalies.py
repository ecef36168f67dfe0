"""Anomalies end to end: a worker whose baseline is loaded from ClickHouse rollups.

Before the worker starts, two days of steady hourly rollups are inserted for tenants
``spiky`` and ``steady`` (10 calls/min). The worker loads them as the detector's
baseline. Then one minute of traffic: ``spiky`` at 5× its rate, ``steady`` at its
rate, ``fresh`` (no history) at 5×; a later event closes that window. Only ``spiky``
must give anomalies (cost, tokens, calls × scopes tenant and tenant+feature): rows in
ClickHouse ``anomalies``, alerts in ``alerts`` and a webhook delivery each.

Event times are a little in the future (the watermark accepts up to 5 min of skew)
so the spike window is always after the loaded history, whatever the minute.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline import migrate
from pipeline.config import Settings
from pipeline.kafka_admin import ensure_topics
from pipeline.store import Store
from tests.integration.harness import WorkerProcess, expected_totals, in_own_process, produce

PER_MIN = 10
TOKENS = (1000, 500)


@pytest.fixture
async def settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    s = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    await ensure_topics(s)
    return s


class Receiver:
    """A loopback webhook receiver answering 200."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def event(tenant: str, ts: datetime) -> dict[str, Any]:
    return {
        "event_id": f"{tenant}-{uuid.uuid4().hex}",
        "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "tenant": tenant,
        "feature": "chat",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": TOKENS[0],
        "output_tokens": TOKENS[1],
    }


def _anomaly_rows(dsn: str) -> list[dict[str, Any]]:
    store = Store.open(dsn, private=True)
    try:
        rows: list[dict[str, Any]] = store.query_dicts(
            "SELECT anomaly_id, scope, metric, ratio FROM anomalies FINAL ORDER BY anomaly_id"
        )
        return rows
    finally:
        store.close()


def seed_history(data_dir: Path, now: datetime, raw_ttl_days: int) -> None:
    """48 h of steady hourly rollups for 'spiky' and 'steady', ending 1 h before this hour."""
    cost = expected_totals([event("x", now)])["cost_usd"]
    hour = now.replace(minute=0, second=0, microsecond=0)
    calls = PER_MIN * 60
    rows = [
        (
            hour - timedelta(hours=h),
            tenant,
            "chat",
            "openai",
            "gpt-4o-mini",
            calls,
            calls,
            calls * TOKENS[0],
            calls * TOKENS[1],
            Decimal(cost) * calls,
        )
        for tenant in ("spiky", "steady")
        for h in range(2, 50)
    ]
    in_own_process(_seed_store, f"chdb://{(data_dir / 'clickhouse').resolve()}", rows, raw_ttl_days)


def _seed_store(dsn: str, rows: list[tuple[Any, ...]], raw_ttl_days: int) -> None:
    store = Store.open(dsn, private=True)
    try:
        migrate.apply(store, parameters={"raw_ttl_days": str(raw_ttl_days)})
        store.insert_rows(
            "usage_rollup_1h",
            rows,
            (
                "bucket",
                "tenant",
                "feature",
                "provider",
                "model",
                "calls",
                "priced_calls",
                "input_tokens",
                "output_tokens",
                "cost_usd",
            ),
        )
    finally:
        store.close()


def wait_until(pred: Any, timeout: float, what: str, worker: WorkerProcess) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.5)
    raise TimeoutError(f"{what} (last: {last})\n{worker.tail()}")


def alerts(w: WorkerProcess) -> list[dict[str, Any]]:
    r = httpx.get(f"{w.url}/v1/alerts", timeout=30)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["alerts"]
    return found


async def send(settings: Settings, events: list[dict[str, Any]]) -> None:
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_tenant.setdefault(e["tenant"], []).append(e)
    await produce(
        settings.kafka_bootstrap,
        settings.topic("usage.events"),
        [(t.encode(), json.dumps(evs).encode()) for t, evs in by_tenant.items()],
    )


@pytest.mark.timeout(240)
async def test_spike_against_clickhouse_baseline(
    settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    data_dir = tmp_path / "w"
    now = datetime.now(UTC)
    seed_history(data_dir, now, settings.raw_ttl_days)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nchannels:\n  hook:\n    type: webhook\n"
        f"    url: {receiver.url}\n    secret: s3cret\n"
        "rules:\n  - name: anomalies\n    when: {kind: anomaly}\n    channels: [hook]\n"
    )
    w = WorkerProcess(settings.kafka_bootstrap, settings.topic_prefix, data_dir, alert_rules=rules)
    w.start()
    try:
        # one window a minute ahead: spiky 5x, steady 1x, fresh (no history) 5x
        base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        spike = [event("spiky", base + timedelta(seconds=i)) for i in range(5 * PER_MIN)]
        spike += [event("steady", base + timedelta(seconds=5 * i)) for i in range(PER_MIN)]
        spike += [event("fresh", base + timedelta(seconds=i)) for i in range(5 * PER_MIN)]
        await send(settings, spike)
        wait_until(
            lambda: w.metrics().get("tokenpipe_monitor_events_total", 0) >= len(spike),
            60,
            "monitors saw the spike",
            w,
        )
        assert alerts(w) == []  # the window is still open
        # a later event moves the watermark past the window's end + grace
        await send(settings, [event("tick", base + timedelta(minutes=3))])
        got = wait_until(lambda: len(alerts(w)) >= 6, 60, "six anomaly alerts", w)
        time.sleep(3)  # anything extra would show up now
        got = alerts(w)
        assert len(got) == 6, got
        assert {a["tenant"] for a in got} == {"spiky"}
        assert {a["kind"] for a in got} == {"anomaly"}
        for a in got:
            assert 4 < a["data"]["ratio"] < 6, a
        wait_until(lambda: len(receiver.bodies) >= 6, 30, "six webhook deliveries", w)
        assert {b["alert_id"] for b in receiver.bodies} == {a["alert_id"] for a in got}
        assert sorted(
            (b["data"]["metric"], tuple(b["scope"].items())) for b in receiver.bodies
        ) == sorted(
            (m, s) for m in ("calls", "cost_usd", "tokens") for s in ((), (("feature", "chat"),))
        )
    finally:
        w.stop()
    rows = in_own_process(_anomaly_rows, f"chdb://{(data_dir / 'clickhouse').resolve()}")
    assert sorted(r["anomaly_id"] for r in rows) == sorted(a["alert_id"] for a in got)
    assert all(r["scope"]["tenant"] == "spiky" for r in rows)
