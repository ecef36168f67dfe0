"""Usage reports: spend and tokens grouped by one dimension over a time range.

Used by ``tokenpipe report``, by the worker's ``GET /v1/usage/summary`` (so a CLI
can ask the worker that owns an embedded store) and by the demo. Reads
``usage_raw``: the sink inserts each event once (see ``processors.sink``), so
plain sums are exact; ``FINAL`` would only matter for rows written by someone
bypassing the sink, and costs a merge at query time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

GROUPABLE = ("model", "provider", "user", "feature", "tenant", "team", "api_key_id")

_SUMS = (
    "count() AS calls",
    "sum(input_tokens) AS input_tokens",
    "sum(output_tokens) AS output_tokens",
    "sum(cache_read_tokens) AS cache_read_tokens",
    "sum(cache_write_tokens) AS cache_write_tokens",
    "sum(reasoning_tokens) AS reasoning_tokens",
    "sum(cost_usd) AS cost_usd",
    "countIf(NOT priced) AS unpriced_calls",
)
COLUMNS = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_calls",
)


def parse_time(value: str, name: str) -> datetime:
    """ISO-8601 with a timezone (``Z`` allowed), or a relative ``-7d``/``-12h``/``-30m``."""
    v = value.strip()
    if v.startswith("-") and v[-1:] in "dhm" and v[1:-1].isdigit():
        unit = {"d": "days", "h": "hours", "m": "minutes"}[v[-1]]
        return datetime.now(UTC) - timedelta(**{unit: int(v[1:-1])})
    try:
        ts = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not an ISO-8601 time or -Nd/-Nh/-Nm") from None
    if ts.tzinfo is None:
        raise ValueError(f"{name}: {value!r} has no timezone (add Z or +00:00)")
    return ts.astimezone(UTC)


@dataclass(frozen=True)
class SummaryQuery:
    """Group-by dimension, half-open range [start, end), optional tenant filter."""

    by: str = "model"
    start: datetime | None = None
    end: datetime | None = None
    tenant: str | None = None

    @classmethod
    def from_strings(
        cls, by: str, start: str | None, end: str | None, tenant: str | None = None
    ) -> SummaryQuery:
        if by not in GROUPABLE:
            raise ValueError(f"by: {by!r} is not one of {', '.join(GROUPABLE)}")
        return cls(
            by=by,
            start=parse_time(start, "from") if start else None,
            end=parse_time(end, "to") if end else None,
            tenant=tenant or None,
        )


@dataclass
class Summary:
    """Rows (one per group value, by cost descending) and the grand total."""

    by: str
    rows: list[dict[str, Any]]
    total: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        def enc(row: dict[str, Any]) -> dict[str, Any]:
            return {k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in row.items()}

        return {"by": self.by, "rows": [enc(r) for r in self.rows], "total": enc(self.total)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        def dec(row: dict[str, Any]) -> dict[str, Any]:
            return {k: (Decimal(v) if k == "cost_usd" else v) for k, v in row.items()}

        return cls(data["by"], [dec(r) for r in data["rows"]], dec(data["total"]))


def summary(store: Any, q: SummaryQuery) -> Summary:
    """Run the summary query on ``store`` (blocking)."""
    where = ["1"]
    params: dict[str, Any] = {}
    if q.start is not None:
        where.append("ts >= {start:DateTime64(3, 'UTC')}")
        params["start"] = q.start
    if q.end is not None:
        where.append("ts < {end:DateTime64(3, 'UTC')}")
        params["end"] = q.end
    if q.tenant:
        where.append("tenant = {tenant:String}")
        params["tenant"] = q.tenant
    cond = " AND ".join(where)
    sums = ", ".join(_SUMS)
    rows = store.query_dicts(
        f"SELECT {q.by} AS key, {sums} FROM usage_raw WHERE {cond} "
        f"GROUP BY key ORDER BY cost_usd DESC, key",
        params,
    )
    # every column is a sum (or a count), so the groups add up to the total:
    # no second scan of usage_raw
    total = {c: sum((r[c] for r in rows), Decimal(0) if c == "cost_usd" else 0) for c in COLUMNS}
    return Summary(q.by, rows, total)


def ingest_latency(store: Any, since: datetime) -> dict[str, float]:
    """Event time → row written (``ingested_at - ts``) for rows with ``ts >= since``.

    Meaningful when producers stamp ``ts`` at send time (the benchmark does); for
    backfilled history it measures the backfill's age instead.
    """
    rows = store.query_rows(
        "SELECT count(), quantilesExact(0.5, 0.99)(d), max(d) FROM ("
        " SELECT dateDiff('millisecond', ts, ingested_at) AS d FROM usage_raw"
        " WHERE ts >= {since:DateTime64(3, 'UTC')})",
        {"since": since},
    )
    n, (p50, p99), mx = rows[0]
    return {
        "rows": int(n),
        "latency_p50_ms": float(p50),
        "latency_p99_ms": float(p99),
        "latency_max_ms": float(mx),
    }
