"""Budgets end to end: real broker, a worker subprocess with the control plane.

The worker is ``tokenpipe worker``: ``create_app`` registers the control plane.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.alerts.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from pipeline.config import Settings
from pipeline.kafka_admin import ensure_topics
from tests.integration.harness import WorkerProcess, consume_all, produce


class ControlWorker(WorkerProcess):
    """A ``WorkerProcess`` with helpers for the budget and alert endpoints."""

    def put_budget(self, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.put(f"{self.url}/v1/budgets/{body['id']}", json=body, timeout=30)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def budget_status(self, budget_id: str) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/v1/budgets/{budget_id}/status", timeout=30)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def alerts(self, budget_id: str) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/v1/alerts", params={"budget_id": budget_id}, timeout=30)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data


@pytest.fixture
async def settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    s = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    await ensure_topics(s)
    return s


def event(
    tenant: str, n: int, input_tokens: int, output_tokens: int, **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": f"{tenant}-{n}-{uuid.uuid4().hex[:6]}",
        "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "tenant": tenant,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        **extra,
    }


async def send_events(settings: Settings, events: list[dict[str, Any]], per: int = 50) -> None:
    msgs = [
        (events[i]["tenant"].encode(), json.dumps(events[i : i + per]).encode())
        for i in range(0, len(events), per)
    ]
    await produce(settings.kafka_bootstrap, settings.topic("usage.events"), msgs)


def wait_until(pred: Any, timeout: float, what: str, worker: WorkerProcess) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.5)
    raise TimeoutError(f"{what} (last: {last})\n{worker.tail()}")


# -------------------------------------------------------------------- reservations
async def test_concurrent_reservations_never_exceed_a_hard_budget(
    settings: Settings, tmp_path: Path
) -> None:
    w = ControlWorker(settings.kafka_bootstrap, settings.topic_prefix, tmp_path / "w")
    w.start()
    try:
        w.put_budget(
            {"id": "hard10", "scope": {"tenant": "acme"}, "period": "month", "limit_usd": "10"}
        )
        # the ledger agent answers once the table is recovered: wait for one answer
        warm = {
            "request_id": "warm",
            "dimensions": {"tenant": "other"},
            "model": "m",
            "estimate_usd": "0.01",
        }
        w.put_budget(
            {"id": "warm", "scope": {"tenant": "other"}, "period": "day", "limit_usd": "1"}
        )
        wait_until(
            lambda: (
                httpx.post(f"{w.url}/v1/budgets/reserve", json=warm, timeout=15).status_code == 200
            ),
            60,
            "ledger ready",
            w,
        )
        estimates = [Decimal(37 + (i * 7919) % 50) / 1000 for i in range(500)]  # $0.037-0.086
        latencies: list[float] = []

        async def one(client: httpx.AsyncClient, i: int) -> dict[str, Any]:
            t0 = time.perf_counter()
            r = await client.post(
                "/v1/budgets/reserve",
                json={
                    "request_id": f"r-{i}",
                    "dimensions": {"tenant": "acme"},
                    "model": "gpt-4o",
                    "estimate_usd": str(estimates[i]),
                },
            )
            latencies.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
            data: dict[str, Any] = r.json()
            return data

        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=w.url, timeout=30, limits=limits) as client:
            answers = await asyncio.gather(*(one(client, i) for i in range(500)))
        allowed = [i for i, a in enumerate(answers) if a["allowed"]]
        total = sum((estimates[i] for i in allowed), Decimal(0))
        assert total <= Decimal(10)
        assert Decimal(10) - total < Decimal("0.086")  # denied only when it did not fit
        assert all(a["reason"] == "budget_exceeded" for a in answers if not a["allowed"])
        status = w.budget_status("hard10")
        assert Decimal(status["reserved"]) == total
        assert status["open_reservations"] == len(allowed)
        latencies.sort()
        print(
            f"reserve x500 concurrent: p50 {latencies[249] * 1000:.1f} ms, "
            f"p99 {latencies[494] * 1000:.1f} ms, allowed {len(allowed)}, total ${total}"
        )
        # bad input is a 400 with the reason
        r = httpx.post(f"{w.url}/v1/budgets/reserve", json={"request_id": "x"}, timeout=10)
        assert r.status_code == 400 and "dimensions" in r.text
    finally:
        w.stop()


# -------------------------------------------------------------------- thresholds + webhook
class Receiver:
    """A loopback webhook receiver answering 500 to the first request, then 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = 500 if not receiver.requests else 200
                receiver.requests.append((dict(self.headers), body, code))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


async def test_threshold_alerts_once_across_restart_and_webhook_delivered(
    settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nchannels:\n  hook:\n    type: webhook\n"
        f"    url: {receiver.url}\n    secret: s3cret\n    max_attempts: 4\n"
        "    backoff_base_s: 0.2\n    backoff_max_s: 0.5\n"
        "rules:\n  - name: budgets\n    when: {kind: budget_threshold}\n    channels: [hook]\n"
    )
    w = ControlWorker(
        settings.kafka_bootstrap, settings.topic_prefix, tmp_path / "w", alert_rules=rules
    )
    w.start()
    try:
        w.put_budget(
            {
                "id": "tok",
                "scope": {"tenant": "beta"},
                "period": "month",
                "limit_tokens": 1000,
                "thresholds": [50, 90],
            }
        )
        await send_events(settings, [event("beta", i, 40, 20) for i in range(10)])  # 600
        wait_until(lambda: len(w.alerts("tok")["alerts"]) >= 1, 60, "50% alert", w)
        w.stop()
        w.start()
        wait_until(lambda: w.budget_status("tok")["spent"] == "600", 60, "recovered", w)
        await send_events(settings, [event("beta", 100 + i, 40, 20) for i in range(6)])  # 960
        got = wait_until(lambda: len(w.alerts("tok")["alerts"]) >= 2, 60, "90% alert", w)
        time.sleep(3)  # anything extra would show up now
        alerts = w.alerts("tok")
        assert [a["data"]["threshold"] for a in alerts["alerts"]] == [50, 90], got
        topic_alerts = await consume_all(settings.kafka_bootstrap, settings.topic("alerts"), 3, 5)
        assert sorted(a["data"]["threshold"] for a in topic_alerts) == [50, 90]
        wait_until(lambda: w.budget_status("tok")["spent"] == "960", 30, "spent 960", w)

        wait_until(
            lambda: sum(1 for *_, c in receiver.requests if c == 200) >= 2, 30, "two deliveries", w
        )
        time.sleep(1)
        ok = [(h, b) for h, b, c in receiver.requests if c == 200]
        assert len(ok) == 2 and len(receiver.requests) == 3  # first answer was a 500
        for headers, body in ok:
            assert verify_signature(
                "s3cret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER]
            )
        ids = {json.loads(b)["alert_id"] for _, b in ok}
        assert ids == {a["alert_id"] for a in alerts["alerts"]}
        statuses = sorted(d["status"] for d in w.alerts("tok")["deliveries"])
        assert statuses == ["failed", "ok", "ok"]
    finally:
        w.stop()


# -------------------------------------------------------------------- kill -9
async def test_kill9_under_load_ledger_equals_clickhouse(
    settings: Settings, tmp_path: Path
) -> None:
    w = ControlWorker(
        settings.kafka_bootstrap, settings.topic_prefix, tmp_path / "w", batch_max_seconds=0.3
    )
    w.start()
    try:
        for t in ("k1", "k2"):
            w.put_budget(
                {"id": f"b-{t}", "scope": {"tenant": t}, "period": "month", "limit_usd": "1000000"}
            )
        events = [
            event("k1" if i % 3 else "k2", i, 1000 + i % 97, 200 + i % 13) for i in range(6000)
        ]

        async def load() -> None:
            for i in range(0, len(events), 500):
                await send_events(settings, events[i : i + 500])
                await asyncio.sleep(0.2)

        task = asyncio.ensure_future(load())
        await asyncio.sleep(1.5)
        w.kill9()
        await task
        w.start()
        w.wait_for_calls(len(events), timeout=180, settle=3)

        def settled() -> bool:
            for t in ("k1", "k2"):
                want = Decimal(
                    httpx.get(
                        w.url + "/v1/usage/summary", params={"by": "model", "tenant": t}, timeout=30
                    ).json()["total"]["cost_usd"]
                )
                if Decimal(w.budget_status(f"b-{t}")["spent"]) != want:
                    return False
            return True

        wait_until(settled, 60, "ledger spent == ClickHouse sum", w)
    finally:
        w.stop()


# -------------------------------------------------------------------- the SDK side
async def test_sdk_guard_reserves_denies_and_settles(settings: Settings, tmp_path: Path) -> None:
    from pipeline.sdk import Emitter
    from pipeline.sdk_budgets import BudgetClient, BudgetDenied

    w = ControlWorker(settings.kafka_bootstrap, settings.topic_prefix, tmp_path / "w")
    w.start()
    emitter = Emitter(settings.kafka_bootstrap, settings.topic("usage.events"))
    budgets = BudgetClient(w.url)
    try:
        w.put_budget({"id": "sdk", "scope": {"tenant": "sdk"}, "period": "month", "limit_usd": "1"})
        with budgets.guard(emitter, model="gpt-4o-mini", estimate_usd="0.6", tenant="sdk") as call:
            # the first call's estimate is held: a second one that would not fit is denied
            with (
                pytest.raises(BudgetDenied) as denied,
                budgets.guard(emitter, model="gpt-4o-mini", estimate_usd="0.6", tenant="sdk"),
            ):
                pass
            assert denied.value.decision["reason"] == "budget_exceeded"
            assert Decimal(w.budget_status("sdk")["reserved"]) == Decimal("0.6")
            call.record(event("sdk", 1, 1000, 200))  # the LLM call happened: record it
        assert emitter.flush(10)
        # the costed event settles the reservation: actual replaces the estimate
        wait_until(lambda: Decimal(w.budget_status("sdk")["reserved"]) == 0, 120, "settled", w)
        spent = Decimal(w.budget_status("sdk")["spent"])
        want = Decimal(
            httpx.get(w.url + "/v1/usage/summary", params={"tenant": "sdk"}, timeout=30).json()[
                "total"
            ]["cost_usd"]
        )
        assert spent == want > 0
        with budgets.guard(emitter, model="gpt-4o-mini", estimate_usd="0.6", tenant="sdk"):
            pass  # fits again now that only the actual cost counts
    finally:
        budgets.close()
        emitter.close(10)
        w.stop()
