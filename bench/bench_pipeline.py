"""End-to-end benchmark of one worker process: events/s, baseline ratio, latency, RSS.

Needs a broker: ``deploy/kafka/kafka.sh start`` (or TOKENPIPE_KAFKA_BOOTSTRAP).
Prints the figures and writes ``bench/results/pipeline.json``. Not a test.

    .venv/bin/python bench/bench_pipeline.py [--events 200000] [--rate 2000 --seconds 20]

1. Throughput: N demo events are produced first (a backlog, 500 events per
   message, as the SDK batches them), then a worker starts; the clock runs from
   "worker healthy" to "all N rows in ClickHouse".
2. Baseline: a bare aiokafka consumer reads the same topic from the start and
   decodes every message (json.loads): events/s; the target ratio is >= 0.5.
3. Latency: events produced at a steady rate with ``ts`` = send time; per row,
   ``ingested_at - ts`` (same clock) gives event → row-visible latency p50/p99.
4. Worker peak RSS (VmHWM from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer

from pipeline.config import Settings
from pipeline.demo import DemoConfig, DemoTraffic, encode_batch
from pipeline.kafka_admin import ensure_topics
from tests.integration.harness import WorkerProcess, produce


def batches(n: int, per_message: int, seed: int) -> list[tuple[bytes, bytes]]:
    traffic = DemoTraffic(DemoConfig(seed=seed))
    by_tenant: dict[str, list[dict]] = {}
    out = []
    for i in range(n):
        ev = traffic.event(i, n)
        b = by_tenant.setdefault(ev["tenant"], [])
        b.append(ev)
        if len(b) == per_message:
            out.append((ev["tenant"].encode(), encode_batch(b)))
            by_tenant[ev["tenant"]] = []
    out += [(t.encode(), encode_batch(b)) for t, b in by_tenant.items() if b]
    return out


async def baseline(bootstrap: str, topic: str, n_events: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    t0 = time.perf_counter()
    try:
        while seen < n_events:
            got = await consumer.getmany(timeout_ms=1000, max_records=1000)
            for records in got.values():
                for r in records:
                    seen += len(json.loads(r.value or b"[]"))
    finally:
        await consumer.stop()
    return n_events / (time.perf_counter() - t0)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid() -> int | None:
    import subprocess

    out = subprocess.run(["pgrep", "-f", "kafka.Kafka"], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    return pids[0] if pids else None


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def steady(bootstrap: str, topic: str, rate: int, seconds: int) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    traffic = DemoTraffic(DemoConfig(seed=99))
    sent = 0
    tick = 0.05
    per_tick = max(1, int(rate * tick))
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            evs = []
            for _ in range(per_tick):
                ev = traffic.event(0, 1)
                ev["ts"] = now
                evs.append(ev)
            await producer.send(topic, encode_batch(evs), key=evs[0]["tenant"].encode())
            sent += len(evs)
            await asyncio.sleep(max(0.0, start + (sent / rate) - time.perf_counter()))
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--per-message", type=int, default=500)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument(
        "--bootstrap", default=os.environ.get("TOKENPIPE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    args = ap.parse_args()
    prefix = f"bench-{uuid.uuid4().hex[:6]}-"
    settings = Settings(kafka_bootstrap=args.bootstrap, topic_prefix=prefix)
    asyncio.run(ensure_topics(settings))
    topic = settings.topic("usage.events")

    msgs = batches(args.events, args.per_message, seed=1)
    t0 = time.perf_counter()
    asyncio.run(produce(args.bootstrap, topic, msgs))
    print(
        f"produced {args.events} events in {len(msgs)} messages in {time.perf_counter() - t0:.1f}s"
    )

    results: dict[str, object] = {"events": args.events, "per_message": args.per_message}
    with tempfile.TemporaryDirectory() as tmp:
        w = WorkerProcess(args.bootstrap, prefix, Path(tmp) / "w")
        w.start()
        assert w.proc is not None
        bpid = broker_pid()
        cpu0 = (cpu_seconds(w.proc.pid), cpu_seconds(bpid) if bpid else 0.0)
        t0 = time.perf_counter()
        w.wait_for_calls(args.events, timeout=900, settle=0)
        elapsed = time.perf_counter() - t0
        cpu1 = (cpu_seconds(w.proc.pid), cpu_seconds(bpid) if bpid else 0.0)
        eps = args.events / elapsed
        results["worker_events_per_s"] = round(eps)
        results["worker_cpu_us_per_event"] = round((cpu1[0] - cpu0[0]) / args.events * 1e6, 1)
        results["broker_cpu_us_per_event"] = round((cpu1[1] - cpu0[1]) / args.events * 1e6, 1)
        results["cores_busy_during_run"] = round(
            ((cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])) / elapsed, 2
        )
        print(f"worker: {args.events} events to ClickHouse in {elapsed:.1f}s = {eps:,.0f} events/s")
        print(
            f"  CPU per event: worker {results['worker_cpu_us_per_event']} us (all threads), "
            f"broker {results['broker_cpu_us_per_event']} us; "
            f"cores busy {results['cores_busy_during_run']} of {os.cpu_count()}"
        )

        base = asyncio.run(baseline(args.bootstrap, topic, args.events))
        results["bare_aiokafka_events_per_s"] = round(base)
        results["ratio_worker_to_bare"] = round(eps / base, 3)
        print(f"bare aiokafka consumer: {base:,.0f} events/s; ratio {eps / base:.2f}")

        before = w.summary()["total"]["calls"]
        steady_start = datetime.now(UTC)
        sent = asyncio.run(steady(args.bootstrap, topic, args.rate, args.seconds))
        w.wait_for_calls(before + sent, timeout=120, settle=0)
        lat = httpx_latency(w, steady_start)
        results.update(lat)
        results["steady_rate"] = args.rate
        print(
            f"latency at {args.rate}/s: p50 {lat['latency_p50_ms']} ms, "
            f"p99 {lat['latency_p99_ms']} ms, max {lat['latency_max_ms']} ms"
        )
        assert w.proc is not None
        results["worker_peak_rss_mb"] = round(rss_peak_mb(w.proc.pid), 1)
        print(f"worker peak RSS: {results['worker_peak_rss_mb']} MB")
        w.stop()
    out = Path(__file__).parent / "results" / "pipeline.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def httpx_latency(w: WorkerProcess, since: datetime) -> dict[str, float]:
    """Latency of the steady-phase rows: the only ones stamped with ts >= ``since``."""
    import httpx

    iso = since.isoformat().replace("+00:00", "Z")
    r = httpx.get(w.url + "/v1/usage/latency", params={"since": iso}, timeout=60)
    r.raise_for_status()
    data: dict[str, float] = r.json()
    return data


if __name__ == "__main__":
    # SIGTERM (timeout, kill) exits through atexit, which stops the worker we started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
