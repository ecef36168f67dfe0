"""Render every catalog dashboard on demo data to ``docs/img/<uid>.png``.

Loads ``dashboards.demo_data`` (50k rows over 30 days ending now) into a temporary
embedded ClickHouse, then draws each dashboard over its default range (last 7 days)
with ``dashboards.render``: the same SQL Grafana runs, variables at "All".

Run: ``.venv/bin/python bench/render_docs.py`` (about 15 s). Options: ``--out``
(folder, default ``docs/img``), ``--html`` (also write ``<uid>.html``), ``--rows``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from dashboards import demo_data, render
from pipeline.migrate import apply
from pipeline.store import Store, close_all

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--html", action="store_true", help="also write <uid>.html")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tokenpipe-render-"))
    try:
        store = Store.open(f"chdb://{folder}", database="demo")
        apply(store)
        end = demo_data.default_end()
        started = time.perf_counter()
        demo_data.load(store, args.rows, days=30, end=end)
        print(f"loaded {args.rows} demo rows in {time.perf_counter() - started:.1f} s")
        start = end - timedelta(days=7)
        for fmt in ("png", "html") if args.html else ("png",):
            for path in render.render_all(
                store, args.out, fmt, time_from=start, time_to=end, strict=True
            ):
                print(
                    f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
                    f"{path.stat().st_size / 1024:.0f} KiB"
                )
        store.close()
    finally:
        close_all()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
