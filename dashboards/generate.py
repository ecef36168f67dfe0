"""Write every dashboard of ``dashboards.catalog`` to ``dashboards/json/<uid>.json``.

    python -m dashboards.generate          # (re)write the files
    python -m dashboards.generate --check  # exit 1 when a file is stale or missing

The output is stable: keys sorted, two-space indent, one trailing newline, so a
regenerated file differs only when the code changed (``tests/dashboards`` fails
when the checked-in JSON is stale). JSON files in the folder that no dashboard
produces are removed (Grafana provisioning would otherwise keep serving them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as models

from dashboards.catalog import builders

JSON_DIR = Path(__file__).resolve().parent / "json"


def to_json_text(dashboard: models.Dashboard | dict[str, Any]) -> str:
    """The canonical text of a dashboard: sorted keys, indent 2, trailing newline."""
    return (
        json.dumps(dashboard, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def render_all() -> dict[str, str]:
    """uid -> canonical JSON text of every dashboard in the catalog."""
    return {uid: to_json_text(build()) for uid, build in builders().items()}


def stale(directory: Path = JSON_DIR) -> list[str]:
    """File names that differ from what the code generates (missing, changed or extra)."""
    rendered = render_all()
    out = []
    for uid, text in rendered.items():
        path = directory / f"{uid}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(path.name)
    expected = {f"{uid}.json" for uid in rendered}
    out.extend(sorted(p.name for p in directory.glob("*.json") if p.name not in expected))
    return out


def write_all(directory: Path = JSON_DIR) -> list[Path]:
    """Write every dashboard, remove JSON files no dashboard produces; return written paths."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render_all()
    written = []
    for uid, text in rendered.items():
        path = directory / f"{uid}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    expected = {p.name for p in written}
    for extra in directory.glob("*.json"):
        if extra.name not in expected:
            extra.unlink()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dashboards.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1)")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for name in bad:
            print(f"stale: dashboards/json/{name}", file=sys.stderr)
        if bad:
            print("run: python -m dashboards.generate", file=sys.stderr)
        return 1 if bad else 0
    for path in write_all():
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
