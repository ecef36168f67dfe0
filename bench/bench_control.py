"""Benchmark of the control plane: reserve latency, threshold → webhook latency, throughput.

Needs a broker (``deploy/kafka/kafka.sh start`` or TOKENPIPE_KAFKA_BOOTSTRAP). Prints
the figures and writes ``bench/results/control.json``. Not a test.

    .venv/bin/python bench/bench_control.py [--rate 500 --seconds 10] [--events 100000]

1. Reserve latency: POST /v1/budgets/reserve at a steady rate over loopback
   (a pool of keep-alive connections), each with a new request id, against one
   budget; per-request wall time p50/p99.
2. Threshold → webhook: for each of N budgets, one usage event produced to
   ``usage.events`` crosses its 50% threshold; a loopback receiver notes when the
   signed webhook arrives. Latency from produce to receipt, p50/p99.
3. Whole-worker throughput with budgets defined (every event matches one): a
   backlog of N events, from worker-ready to all rows in ClickHouse.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from aiokafka import AIOKafkaProducer

from bench.bench_pipeline import batches
from pipeline.config import Settings
from pipeline.kafka_admin import ensure_topics
from tests.integration.harness import WorkerProcess, produce


class Receiver:
    """Loopback webhook receiver: alert id → receipt time."""

    def __init__(self) -> None:
        self.got: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                data = json.loads(body)
                receiver.got.setdefault(data.get("data", {}).get("budget_id", ""), time.time())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2)


async def reserve_load(url: str, rate: int, seconds: int) -> list[float]:
    """Open-loop load: requests start at ``rate``/s whatever the answers do.

    aiohttp rather than httpx: httpx's async pool stalled (pool timeouts) at a few
    hundred concurrent requests on this machine while the worker sat idle.
    """
    import aiohttp

    lat: list[float] = []
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            body = {
                "request_id": f"r-{i}-{uuid.uuid4().hex[:8]}",
                "dimensions": {"tenant": "bench"},
                "model": "gpt-4o-mini",
                "estimate_usd": "0.0001",
                "ttl_s": 60,
            }
            t = time.perf_counter()
            async with session.post(url, json=body) as r:
                await r.read()
                r.raise_for_status()
            lat.append((time.perf_counter() - t) * 1000)

        tasks = []
        start = time.perf_counter()
        for i in range(rate * seconds):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(i)))
        await asyncio.gather(*tasks)
    return lat


async def crossing_events(bootstrap: str, topic: str, n: int) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    sent: dict[str, float] = {}
    try:
        for i in range(n):
            tenant = f"thr-{i}"
            ev = {
                "event_id": uuid.uuid4().hex,
                "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "tenant": tenant,
                "model": "gpt-4o-mini",
                "provider": "openai",
                "input_tokens": 500,
                "output_tokens": 100,
            }
            sent[f"thr-{i}"] = time.time()
            await producer.send_and_wait(topic, json.dumps([ev]).encode(), key=tenant.encode())
            await asyncio.sleep(0.25)
    finally:
        await producer.stop()
    return sent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--crossings", type=int, default=20)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument(
        "--bootstrap", default=os.environ.get("TOKENPIPE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    args = ap.parse_args()
    prefix = f"benchc-{uuid.uuid4().hex[:6]}-"
    settings = Settings(kafka_bootstrap=args.bootstrap, topic_prefix=prefix)
    asyncio.run(ensure_topics(settings))
    receiver = Receiver()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(
            "version: 1\nchannels:\n  hook:\n    type: webhook\n"
            f"    url: {receiver.url}\n    secret: bench\n"
            "rules:\n  - name: budgets\n    when: {kind: budget_threshold}\n    channels: [hook]\n"
        )
        w = WorkerProcess(args.bootstrap, prefix, Path(tmp) / "w", alert_rules=rules)
        w.start()
        try:
            budgets = (
                [
                    {
                        "id": "bench",
                        "scope": {"tenant": "bench"},
                        "period": "month",
                        "limit_usd": "1000000",
                    }
                ]
                + [
                    {
                        "id": f"thr-{i}",
                        "scope": {"tenant": f"thr-{i}"},
                        "period": "month",
                        "limit_tokens": 1000,
                        "thresholds": [50],
                    }
                    for i in range(args.crossings)
                ]
                + [
                    {
                        "id": f"demo-{t}",
                        "scope": {"tenant": t},
                        "period": "month",
                        "limit_usd": "1000000",
                    }
                    for t in ("acme", "globex", "initech", "umbrella", "hooli")
                ]
            )
            for b in budgets:
                httpx.put(f"{w.url}/v1/budgets/{b['id']}", json=b, timeout=30).raise_for_status()

            lat = asyncio.run(reserve_load(w.url + "/v1/budgets/reserve", args.rate, args.seconds))
            results.update(
                reserve_rate=args.rate,
                reserve_requests=len(lat),
                reserve_p50_ms=pct(lat, 0.5),
                reserve_p99_ms=pct(lat, 0.99),
                reserve_max_ms=round(max(lat), 2),
            )
            print(
                f"reserve at {args.rate}/s: p50 {results['reserve_p50_ms']} ms, "
                f"p99 {results['reserve_p99_ms']} ms ({len(lat)} requests)"
            )

            sent = asyncio.run(
                crossing_events(args.bootstrap, settings.topic("usage.events"), args.crossings)
            )
            deadline = time.time() + 60
            while len(receiver.got) < len(sent) and time.time() < deadline:
                time.sleep(0.1)
            webhook = [(receiver.got[k] - t) * 1000 for k, t in sent.items() if k in receiver.got]
            results.update(
                crossings=len(sent),
                webhooks_received=len(webhook),
                threshold_to_webhook_p50_ms=pct(webhook, 0.5) if webhook else None,
                threshold_to_webhook_p99_ms=pct(webhook, 0.99) if webhook else None,
            )
            print(
                f"threshold → webhook: {len(webhook)}/{len(sent)} received, "
                f"p50 {results['threshold_to_webhook_p50_ms']} ms, "
                f"p99 {results['threshold_to_webhook_p99_ms']} ms"
            )

            before = w.summary()["total"]["calls"]
            msgs = batches(args.events, 500, seed=3)
            asyncio.run(produce(args.bootstrap, settings.topic("usage.events"), msgs))
            t0 = time.perf_counter()
            w.wait_for_calls(before + args.events, timeout=900, settle=0)
            eps = args.events / (time.perf_counter() - t0)
            results["worker_events_per_s_with_budgets"] = round(eps)
            print(f"throughput with {len(budgets)} budgets: {eps:,.0f} events/s")
            statuses = [
                httpx.get(f"{w.url}/v1/budgets/demo-{t}/status", timeout=30).json()
                for t in ("acme", "globex")
            ]
            results["ledger_spent_sample"] = [s.get("spent") for s in statuses]
        finally:
            w.stop()
    receiver.server.shutdown()
    out = Path(__file__).parent / "results" / "control.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}; median webhook {statistics.median(webhook) if webhook else None}")


if __name__ == "__main__":
    # SIGTERM (timeout, kill) exits through atexit, which stops the worker we started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
