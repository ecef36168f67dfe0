"""Every dashboard panel query on 10M usage rows, embedded ClickHouse (target <= 200 ms each).

Generates ``--rows`` (default 10M) rows over the last 30 days straight inside
ClickHouse (``INSERT INTO usage_raw SELECT ... FROM numbers(...)`` in 1M-row
chunks; the rollup materialized views fill the rollups as in production), then runs
every panel query of every checked-in dashboard with all variables at "All"
(the heaviest case) over two ranges: the dashboards' default (last 7 days) and
the whole 30 days. Each query runs once to warm up, then ``--repeat`` times; the
median is reported. Writes ``bench/results/dashboards.json``.

Run: ``.venv/bin/python bench/bench_dashboards.py`` (about 3 minutes here).
Options: ``--path`` (chDB data folder, default a temporary one, deleted after),
``--rows``, ``--repeat``.

Data shape: 12 tenants (skewed), up to 40 users each (Zipf-like), 7 features,
7 models of 4 providers, cache reads on half the calls, reasoning on o3-mini, 2%
errors. That gives the hourly rollup several million rows at 10M raw rows: the
user dimension in the rollup key keeps it from shrinking much more.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dashboards.execute import panel_queries, resolve_variables, run_panel_query
from pipeline.migrate import apply
from pipeline.store import Store, close_all

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "dashboards.json"
JSON_DIR = ROOT / "dashboards" / "json"
TARGET_MS = 200.0
CHUNK = 1_000_000

_FEATURES = "['chat','search','summarize','code-review','agent','classify','extract']"
_FEATURE_INPUT = "[1500, 6000, 8000, 12000, 4000, 800, 3000]"
_FEATURE_OUTPUT = "[400, 200, 300, 800, 600, 8, 150]"
_MODELS = (
    "['gpt-4o','gpt-4o-mini','o3-mini','claude-sonnet-4','claude-3-5-haiku',"
    "'gemini-2.0-flash','llama-3.1-70b-local']"
)
_PROVIDERS = "['openai','openai','openai','anthropic','anthropic','google','selfhosted']"
# USD per 1M tokens: input, cache read, output (0 for the unpriced local model)
_P_IN = "[2.5, 0.15, 1.1, 3.0, 0.8, 0.1, 0.0]"
_P_CR = "[1.25, 0.075, 0.55, 0.3, 0.08, 0.025, 0.0]"
_P_OUT = "[10.0, 0.6, 4.4, 15.0, 4.0, 0.4, 0.0]"

_COLUMNS = """event_id, ts, tenant, user, team, feature, api_key_id, provider, model,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    cost_usd, input_cost_usd, cache_read_cost_usd, cache_write_cost_usd, output_cost_usd,
    priced, price_source, price_version, request_id, reservation_id, latency_ms, status,
    attributes"""

_INSERT = f"""
INSERT INTO usage_raw ({_COLUMNS})
SELECT {_COLUMNS} FROM (
SELECT
    concat('bench-', toString(number)) AS event_id,
    fromUnixTimestamp64Milli(toInt64({{end_ms:Int64}} - cityHash64(number, 1) % {{span_ms:UInt64}}))
        AS ts,
    concat('tenant', leftPad(toString(toUInt32(pow(u2, 2) * 12)), 2, '0')) AS tenant,
    toUInt32(pow(u3, 3) * 40) AS user_idx,
    concat(tenant, '-user', toString(user_idx)) AS user,
    concat(tenant, '-team', toString(user_idx % 4)) AS team,
    toUInt8(1 + cityHash64(number, 4) % 7) AS f,
    {_FEATURES}[f] AS feature,
    concat(tenant, '-key', toString(user_idx % 5)) AS api_key_id,
    toUInt8(1 + (f * 3 + cityHash64(number, 5) % 3) % 7) AS m,
    {_PROVIDERS}[m] AS provider,
    {_MODELS}[m] AS model,
    if(u11 < 0.02, 'error', 'ok') AS status,
    toUInt64({_FEATURE_INPUT}[f] * exp((u6 + u7 + u8 - 1.5) * 1.2) + 1) AS input_tokens,
    if(status = 'error', 0,
       toUInt64({_FEATURE_OUTPUT}[f] * exp((u7 + u9 - 1.0) * 1.2) + 1)) AS output_tokens,
    if(u10 < 0.5, toUInt64(input_tokens * u9 * 0.8), 0) AS cache_read_tokens,
    toUInt64(0) AS cache_write_tokens,
    if(model = 'o3-mini', toUInt64(output_tokens * 0.6), 0) AS reasoning_tokens,
    toDecimal64((input_tokens - cache_read_tokens) * {_P_IN}[m] / 1e6, 9) AS input_cost_usd,
    toDecimal64(cache_read_tokens * {_P_CR}[m] / 1e6, 9) AS cache_read_cost_usd,
    toDecimal64(0, 9) AS cache_write_cost_usd,
    toDecimal64(output_tokens * {_P_OUT}[m] / 1e6, 9) AS output_cost_usd,
    input_cost_usd + cache_read_cost_usd + cache_write_cost_usd + output_cost_usd AS cost_usd,
    model != 'llama-3.1-70b-local' AS priced,
    if(priced, 'bench', '') AS price_source,
    if(priced, 'bench-1', '') AS price_version,
    concat('req-', toString(number)) AS request_id,
    '' AS reservation_id,
    toUInt32(200 + output_tokens * 15 + input_tokens / 50) AS latency_ms,
    map('env', 'bench') AS attributes
FROM (
    SELECT number,
        cityHash64(number, 2) / 18446744073709551615.0 AS u2,
        cityHash64(number, 3) / 18446744073709551615.0 AS u3,
        cityHash64(number, 6) / 18446744073709551615.0 AS u6,
        cityHash64(number, 7) / 18446744073709551615.0 AS u7,
        cityHash64(number, 8) / 18446744073709551615.0 AS u8,
        cityHash64(number, 9) / 18446744073709551615.0 AS u9,
        cityHash64(number, 10) / 18446744073709551615.0 AS u10,
        cityHash64(number, 11) / 18446744073709551615.0 AS u11
    FROM numbers({{start:UInt64}}, {{count:UInt64}})
)
)
"""


def load(store: Store, rows: int, end: datetime, days: int = 30) -> float:
    """Insert ``rows`` synthetic rows ending at ``end``; return seconds taken."""
    t0 = time.perf_counter()
    for start in range(0, rows, CHUNK):
        store.command(
            _INSERT,
            {
                "end_ms": int(end.timestamp() * 1000),
                "span_ms": days * 86_400_000,
                "start": start,
                "count": min(CHUNK, rows - start),
            },
        )
        print(f"  inserted {min(start + CHUNK, rows):>10,} rows", flush=True)
    store.command("OPTIMIZE TABLE usage_rollup_1h FINAL")
    store.command("OPTIMIZE TABLE usage_rollup_1d FINAL")
    return time.perf_counter() - t0


def table_rows(store: Store) -> dict[str, int]:
    return {
        t: int(store.command(f"SELECT count() FROM {t}"))
        for t in ("usage_raw", "usage_rollup_1m", "usage_rollup_1h", "usage_rollup_1d")
    }


def bench(store: Store, end: datetime, repeat: int) -> list[dict[str, Any]]:
    ranges = {"7d": end - timedelta(days=7), "30d": end - timedelta(days=30)}
    out = []
    for path in sorted(JSON_DIR.glob("*.json")):
        dash = json.loads(path.read_text(encoding="utf-8"))
        for label, start in ranges.items():
            sel, opts = resolve_variables(store, dash, start, end)
            for q in panel_queries(dash):
                run_panel_query(store, q, start, end, sel, opts)  # warm-up
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    res = run_panel_query(store, q, start, end, sel, opts)
                    times.append((time.perf_counter() - t0) * 1000)
                out.append(
                    {
                        "dashboard": dash["uid"],
                        "panel_id": q.panel_id,
                        "panel": q.panel_title,
                        "range": label,
                        "median_ms": round(statistics.median(times), 1),
                        "max_ms": round(max(times), 1),
                        "rows": len(res.rows),
                    }
                )
                r = out[-1]
                flag = "" if r["median_ms"] <= TARGET_MS else "  > target"
                print(
                    f"{dash['uid']:24} {label:>3} {q.panel_title[:44]:44} "
                    f"{r['median_ms']:8.1f} ms{flag}",
                    flush=True,
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", help="chDB data folder (default: a temporary one)")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    tmp = None if args.path else tempfile.mkdtemp(prefix="bench_dashboards_")
    path = args.path or tmp
    assert path is not None
    store = Store.open(f"chdb://{Path(path).resolve()}", database="bench_dashboards")
    try:
        store.command("DROP DATABASE IF EXISTS bench_dashboards SYNC")
        store.close()
        store = Store.open(f"chdb://{Path(path).resolve()}", database="bench_dashboards")
        apply(store)
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        print(f"loading {args.rows:,} rows ...", flush=True)
        load_s = load(store, args.rows, end)
        counts = table_rows(store)
        print(f"loaded in {load_s:.1f} s: {counts}", flush=True)
        results = bench(store, end, args.repeat)
    finally:
        store.close()
        close_all()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    over = [r for r in results if r["median_ms"] > TARGET_MS]
    summary = {
        "rows": args.rows,
        "table_rows": counts,
        "load_seconds": round(load_s, 1),
        "target_ms": TARGET_MS,
        "queries": len(results),
        "over_target": len(over),
        "median_of_medians_ms": round(statistics.median(r["median_ms"] for r in results), 1),
        "max_median_ms": max(r["median_ms"] for r in results),
        "python": platform.python_version(),
        "measured_at": end.isoformat(),
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(
        f"{len(results)} queries, {len(over)} over {TARGET_MS:.0f} ms; median "
        f"{summary['median_of_medians_ms']} ms, worst {summary['max_median_ms']} ms -> {RESULTS}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
