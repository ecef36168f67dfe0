"""Store benchmarks (not a test): insert throughput with the rollup MVs, existing_event_ids.

Run: ``.venv/bin/python -m tests.store.bench_store [/abs/empty/dir]``. Uses a fresh
embedded store (a tmp dir by default), applies the migrations, then

1. inserts 100k rows via Arrow into usage_raw, in 10 batches of 10k (the sink's
   batch size), with the three rollup MVs attached, and prints rows/s;
2. fills usage_raw to 1M rows and times ``existing_event_ids`` for a 10k batch
   (half of its ids already stored) over several runs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa

from pipeline.migrate import apply
from pipeline.store import Store

# Recent, so the raw TTL (90 days) does not drop the rows.
T0 = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
TENANTS = [f"tenant{i}" for i in range(20)]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "claude-haiku-4", "gemini-2.5-pro"]


def batch(start: int, n: int, seconds_per_row: float = 0.01) -> pa.Table:
    """``n`` synthetic rows, ids ``e{start}..``, ts spread ``seconds_per_row`` apart."""
    ids = range(start, start + n)
    cost = pa.array([Decimal("0.000123456")] * n, type=pa.decimal128(18, 9))
    return pa.table(
        {
            "event_id": pa.array([f"e{i:012d}" for i in ids]),
            "ts": pa.array(
                [T0 + timedelta(seconds=i * seconds_per_row) for i in ids],
                type=pa.timestamp("ms", tz="UTC"),
            ),
            "tenant": pa.array([TENANTS[i % len(TENANTS)] for i in ids]),
            "user": pa.array([f"user{i % 500}" for i in ids]),
            "team": pa.array([f"team{i % 10}" for i in ids]),
            "feature": pa.array([f"feature{i % 7}" for i in ids]),
            "api_key_id": pa.array([f"key{i % 50}" for i in ids]),
            "provider": pa.array(["openai" if i % 2 else "anthropic" for i in ids]),
            "model": pa.array([MODELS[i % len(MODELS)] for i in ids]),
            "input_tokens": pa.array([1000 + i % 100 for i in ids], type=pa.uint64()),
            "output_tokens": pa.array([200] * n, type=pa.uint64()),
            "cache_read_tokens": pa.array([100] * n, type=pa.uint64()),
            "cache_write_tokens": pa.array([0] * n, type=pa.uint64()),
            "reasoning_tokens": pa.array([0] * n, type=pa.uint64()),
            "cost_usd": cost,
            "input_cost_usd": cost,
            "cache_read_cost_usd": cost,
            "cache_write_cost_usd": cost,
            "output_cost_usd": cost,
            "priced": pa.array([i % 10 != 0 for i in ids]),
            "price_source": pa.array(["genai-prices"] * n),
            "price_version": pa.array(["2026-01"] * n),
            "request_id": pa.array([f"req{i}" for i in ids]),
            "reservation_id": pa.array([""] * n),
            "latency_ms": pa.array([250] * n, type=pa.uint32()),
            "status": pa.array(["ok"] * n),
            "attributes": pa.array([[("env", "prod")]] * n, type=pa.map_(pa.string(), pa.string())),
        }
    )


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="tp-bench-")
    store = Store.open(f"chdb://{path}", "bench")
    apply(store)
    batches = [batch(i * 10_000, 10_000) for i in range(10)]
    t = time.perf_counter()
    for b in batches:
        store.insert_arrow("usage_raw", b)
    dt = time.perf_counter() - t
    print(f"insert 100k rows (10 x 10k, Arrow, 3 MVs): {dt:.2f}s = {100_000 / dt:,.0f} rows/s")
    for b in range(10, 100):
        store.insert_arrow("usage_raw", batch(b * 10_000, 10_000))
    total = store.command("SELECT count() FROM usage_raw")
    # A sink batch: 10k events of the last ~100 s, half already stored.
    start = 995_000
    new = batch(start, 10_000)
    keys = list(
        zip(
            new.column("tenant").to_pylist(),
            new.column("ts").to_pylist(),
            new.column("event_id").to_pylist(),
            strict=True,
        )
    )
    times = []
    for _ in range(5):
        t = time.perf_counter()
        found = store.existing_event_ids(keys)
        times.append(time.perf_counter() - t)
    print(
        f"existing_event_ids(10k keys) against {total} rows: found {len(found)}, "
        f"min {min(times) * 1000:.0f} ms, median {sorted(times)[2] * 1000:.0f} ms"
    )
    # A replay batch spread over ~3 h of history (wide ts range), all already stored.
    wide = batch(0, 10_000, seconds_per_row=1.0)
    wide_keys = list(
        zip(
            wide.column("tenant").to_pylist(),
            wide.column("ts").to_pylist(),
            [f"e{i * 100:012d}" for i in range(10_000)],
            strict=True,
        )
    )
    t = time.perf_counter()
    found = store.existing_event_ids(wide_keys)
    print(
        f"existing_event_ids(10k keys, ts span 2.8 h): found {len(found)}, "
        f"{(time.perf_counter() - t) * 1000:.0f} ms"
    )
    store.close()


if __name__ == "__main__":
    main()
