"""Emit SDK: cost of ``record()`` on the caller's thread, and end-to-end events/s to Kafka.

Run (needs a broker): ``KAFKA_PORT=19192 deploy/kafka/kafka.sh start`` then
``.venv/bin/python bench/bench_sdk.py --bootstrap 127.0.0.1:19192 [--n 200000]``.
Prints the figures and writes ``bench/results/sdk.json``. Not a test: numbers depend
on the machine (and on what else runs on it).

* ``record_ns``: per-call ``Emitter.record`` time (``perf_counter_ns`` around each call,
  timer overhead subtracted) while the background thread is encoding and producing
  the same events — the realistic case, since the caller shares the GIL with it.
* ``record_mean_ns``: a tight loop of ``record`` calls divided by the count.
* ``e2e``: events/s from the first ``record`` until ``flush`` returned (every event
  acknowledged by the broker, ``acks=all``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.sdk import Emitter, _compression

RESULTS = Path(__file__).resolve().parent / "results" / "sdk.json"


def make_events(n: int) -> list[dict[str, Any]]:
    return [
        {
            "tenant": f"tenant-{i % 20}",
            "user": f"user-{i % 1000}",
            "feature": "chat",
            "model": "gpt-4o-mini",
            "input_tokens": 1200 + i % 500,
            "output_tokens": 80 + i % 300,
            "cache_read_tokens": 1024,
            "latency_ms": 350,
        }
        for i in range(n)
    ]


async def admin_topic(bootstrap: str, topic: str, create: bool) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if create:
            await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
        else:
            await admin.delete_topics([topic])
    finally:
        await admin.close()


def pct(sorted_values: list[int], p: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def bench_record_latency(bootstrap: str, topic: str, n: int, **opts: Any) -> dict[str, Any]:
    events = make_events(n)
    clock = time.perf_counter_ns
    overhead = min(-(clock() - clock()) for _ in range(10_000))
    samples: list[int] = []
    with Emitter(bootstrap, topic, max_buffer=n + 1, **opts) as em:
        record = em.record
        for e in events:
            t0 = clock()
            record(e)
            samples.append(clock() - t0 - overhead)
        em.flush(60)
        stats = em.stats.as_dict()
    samples.sort()
    return {
        "calls": n,
        "p50_ns": pct(samples, 0.50),
        "p90_ns": pct(samples, 0.90),
        "p99_ns": pct(samples, 0.99),
        "p999_ns": pct(samples, 0.999),
        "mean_ns": round(statistics.fmean(samples)),
        "timer_overhead_ns": overhead,
        "stats": stats,
    }


def bench_end_to_end(bootstrap: str, topic: str, n: int, **opts: Any) -> dict[str, Any]:
    events = make_events(n)
    with Emitter(bootstrap, topic, max_buffer=n + 1, **opts) as em:
        em.record(events[0])  # connect (metadata) before timing
        em.flush(30)
        start = time.perf_counter()
        for e in events:
            em.record(e)
        recorded = time.perf_counter() - start
        ok = em.flush(120)
        total = time.perf_counter() - start
        stats = em.stats.as_dict()
    return {
        "events": n,
        "flushed": ok,
        "record_loop_s": round(recorded, 4),
        "record_mean_ns": round(recorded / n * 1e9),
        "total_s": round(total, 4),
        "events_per_s": round(n / total),
        "stats": stats,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument(
        "--compression", default="", help="override the SDK's choice: none, gzip, lz4 ..."
    )
    args = parser.parse_args()

    opts: dict[str, Any] = {}
    if args.compression:
        codec = None if args.compression == "none" else args.compression
        opts["producer_config"] = {"compression_type": codec}
    compression = args.compression or _compression()
    topic = f"bench-sdk-{uuid.uuid4().hex[:8]}"
    asyncio.run(admin_topic(args.bootstrap, topic, create=True))
    try:
        latency = bench_record_latency(args.bootstrap, topic, args.n, **opts)
        e2e = bench_end_to_end(args.bootstrap, topic, args.n, **opts)
    finally:
        asyncio.run(admin_topic(args.bootstrap, topic, create=False))

    result = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "compression": compression,
        "record": latency,
        "e2e": e2e,
    }
    print(
        f"record(): p50 {latency['p50_ns']} ns, p99 {latency['p99_ns']} ns, "
        f"mean {latency['mean_ns']} ns per call (while the background thread produces)"
    )
    print(
        f"tight loop record(): {e2e['record_mean_ns']} ns/call; end-to-end "
        f"{e2e['events_per_s']:,} events/s ({e2e['events']} events, acks=all, "
        f"{result['compression']})"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
