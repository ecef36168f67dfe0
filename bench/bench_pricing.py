"""Pricing throughput: ``PriceCatalog.price_many`` on a mixed batch, one core.

Run: ``.venv/bin/python bench/bench_pricing.py [--n 200000]``. Prints usages/s and
writes ``bench/results/pricing.json``. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import genai_prices

from pipeline.costing.pricing import PriceCatalog
from pipeline.costing.usage import TokenUsage

MODELS: list[tuple[str, str | None]] = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("gpt-4.1", "openai"),
    ("gpt-5", "openai"),
    ("gpt-5-mini", "openai"),
    ("o3", "openai"),  # dated price: bisect on the timestamp
    ("o4-mini", None),
    ("claude-sonnet-4-5", "anthropic"),  # tiered
    ("claude-opus-4-1", "anthropic"),
    ("claude-haiku-4-5", None),
    ("claude-3-5-haiku-latest", "anthropic"),
    ("gemini-2.5-pro", "google"),  # tiered
    ("gemini-2.5-flash", "google"),
    ("gemini-2.0-flash", None),
    ("unknown-model-x", None),  # unpriced path
]


def make_batch(n: int, seed: int = 7) -> list[tuple[str, str | None, TokenUsage, datetime]]:
    rnd = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    items = []
    for _ in range(n):
        model, provider = rnd.choice(MODELS)
        inp = rnd.randint(0, 300_000)
        cr = rnd.randint(0, inp // 2)
        cw = rnd.randint(0, (inp - cr) // 4) if provider == "anthropic" else 0
        out = rnd.randint(0, 8_000)
        rs = rnd.randint(0, out)
        at = start + timedelta(seconds=rnd.randint(0, 365 * 86400))
        items.append((model, provider, TokenUsage(inp, out, cr, cw, rs), at))
    return items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    items = make_batch(args.n)
    catalog = PriceCatalog()
    catalog.price_many(items[:1000])  # warm the resolution cache, as a long-lived worker would
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        results = catalog.price_many(items)
        best = min(best, time.perf_counter() - t0)
    rate = args.n / best
    priced = sum(r.priced for r in results)
    print(
        f"priced {args.n} usages across {len(MODELS)} models in {best:.3f}s "
        f"-> {rate:,.0f} usages/s (best of {args.repeat}); {priced} priced"
    )
    out = {
        "benchmark": "PriceCatalog.price_many",
        "usages": args.n,
        "models": len(MODELS),
        "seconds_best": round(best, 4),
        "usages_per_second": round(rate),
        "priced": priced,
        "genai_prices": genai_prices.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = Path(__file__).parent / "results" / "pricing.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
