"""The usage query API: ``GET /api/analytics/tokens`` (pure queries + the faust view).

``analytics(store, query)`` is blocking and testable with an embedded store;
``register_api(app, rt)`` adds the view to the worker app, which runs the query
in ``rt.query_executor`` so the event loop keeps serving.

Where each number comes from:

* ``summary`` and ``models``: ``usage_raw`` over exactly [from, to) (exact sums;
  raw rows live ``raw_ttl_days``);
* ``series``: the hour or day rollup, buckets that start in
  [bucket of ``from``, ``to``) — the first bucket may begin before ``from``;
* ``projection``: the hour rollup from the start of the current UTC month to now:
  month-to-date cost plus the month-to-date run rate times the time left;
* ``alerts``, ``anomalies``, ``budgets``: read from their tables when those exist
  (``system.tables``), else empty lists; ``sources`` names the table used or null.

Tenant scoping: ``AnalyticsQuery.tenant`` is applied to every query, and the view
always sets it from the API key (see ``pipeline.apikeys.authorize``).
"""

from __future__ import annotations

import asyncio
import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipeline.apikeys import AuthError, KeyRing, authorize_request
from pipeline.report import parse_time

AGGREGATIONS = {"hour": "usage_rollup_1h", "day": "usage_rollup_1d"}
MAX_SERIES_POINTS = 24 * 92
"""An hourly series is limited to ~3 months of points; use aggregation=day beyond."""
OPTIONAL_TABLES: dict[str, tuple[str, ...]] = {
    "alerts": ("alerts",),
    "anomalies": ("anomalies",),
    "budgets": ("budgets",),
}
"""Tables of the optional sections (migration 0003); empty while a table is absent."""
OPTIONAL_LIMIT = 100
_TIME_COLUMNS = ("ts", "window_start", "detected_at", "updated_at", "period_start")
_RANGE = re.compile(r"^(\d{1,4})([hd])$")

_TOKEN_SUMS = (
    "count() AS calls",
    "countIf(status != 'ok') AS error_calls",
    "countIf(NOT priced) AS unpriced_calls",
    "sum(input_tokens) AS input_tokens",
    "sum(output_tokens) AS output_tokens",
    "sum(cache_read_tokens) AS cache_read_tokens",
    "sum(cache_write_tokens) AS cache_write_tokens",
    "sum(reasoning_tokens) AS reasoning_tokens",
    "sum(cost_usd) AS cost_usd",
)


@dataclass(frozen=True)
class AnalyticsQuery:
    """Half-open range [start, end), bucket size, optional model and tenant filters."""

    start: datetime
    end: datetime
    aggregation: str = "hour"
    model: str | None = None
    tenant: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str], now: datetime | None = None) -> AnalyticsQuery:
        """Parse query-string values; raise ``ValueError`` with a reason for a 400.

        ``range`` (``24h``, ``7d``, ``30d``: N hours or days back from now) or
        ``from``/``to`` (ISO-8601 or ``-7d``); default ``7d``. ``aggregation`` is
        ``hour`` or ``day`` (default: hour for ranges up to 2 days, else day).
        """
        now = now or datetime.now(UTC)
        rng, start_s, end_s = params.get("range"), params.get("from"), params.get("to")
        if rng and (start_s or end_s):
            raise ValueError("give either range or from/to, not both")
        end = parse_time(end_s, "to") if end_s else now
        if start_s:
            start = parse_time(start_s, "from")
        else:
            m = _RANGE.match((rng or "7d").strip())
            if not m:
                raise ValueError(f"range: {rng!r} is not like 24h, 7d or 30d")
            n, unit = int(m.group(1)), m.group(2)
            start = end - (timedelta(hours=n) if unit == "h" else timedelta(days=n))
        if start >= end:
            raise ValueError("from must be before to")
        agg = params.get("aggregation") or ("hour" if end - start <= timedelta(days=2) else "day")
        if agg not in AGGREGATIONS:
            raise ValueError(f"aggregation: {agg!r} is not one of hour, day")
        if agg == "hour" and (end - start) > timedelta(hours=MAX_SERIES_POINTS):
            raise ValueError("aggregation=hour covers at most 92 days; use aggregation=day")
        return cls(start, end, agg, params.get("model") or None, params.get("tenant") or None)


def _dec(v: Any) -> str:
    return format(Decimal(v), "f")


def _tokens(row: Mapping[str, Any]) -> dict[str, int]:
    inp, cr, cw = (
        int(row["input_tokens"]),
        int(row["cache_read_tokens"]),
        int(row["cache_write_tokens"]),
    )
    out = int(row["output_tokens"])
    return {
        "input": inp,
        "uncached_input": max(0, inp - cr - cw),
        "cache_read": cr,
        "cache_write": cw,
        "output": out,
        "reasoning": int(row["reasoning_tokens"]),
        "total": inp + out,
    }


def _filters(q: AnalyticsQuery, time_col: str | None) -> tuple[str, dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    if time_col == "ts":
        where += ["ts >= {start:DateTime64(3, 'UTC')}", "ts < {end:DateTime64(3, 'UTC')}"]
        params.update(start=q.start, end=q.end)
    if q.tenant is not None:
        where.append("tenant = {tenant:String}")
        params["tenant"] = q.tenant
    if q.model is not None:
        where.append("model = {model:String}")
        params["model"] = q.model
    return (" AND ".join(where) or "1"), params


def summary(store: Any, q: AnalyticsQuery) -> dict[str, Any]:
    cond, params = _filters(q, "ts")
    rows = store.query_dicts(f"SELECT {', '.join(_TOKEN_SUMS)} FROM usage_raw WHERE {cond}", params)
    r = rows[0]
    return {
        "calls": int(r["calls"]),
        "error_calls": int(r["error_calls"]),
        "unpriced_calls": int(r["unpriced_calls"]),
        "tokens": _tokens(r),
        "cost_usd": _dec(r["cost_usd"]),
    }


def models(store: Any, q: AnalyticsQuery) -> list[dict[str, Any]]:
    cond, params = _filters(q, "ts")
    rows = store.query_dicts(
        f"SELECT model, provider, {', '.join(_TOKEN_SUMS)} FROM usage_raw WHERE {cond} "
        "GROUP BY model, provider ORDER BY cost_usd DESC, calls DESC, model",
        params,
    )
    total = sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))
    return [
        {
            "model": r["model"],
            "provider": r["provider"],
            "calls": int(r["calls"]),
            "error_calls": int(r["error_calls"]),
            "tokens": _tokens(r),
            "cost_usd": _dec(r["cost_usd"]),
            "cost_share": float(Decimal(r["cost_usd"]) / total) if total else 0.0,
        }
        for r in rows
    ]


def series(store: Any, q: AnalyticsQuery) -> list[dict[str, Any]]:
    table = AGGREGATIONS[q.aggregation]
    trunc = "toStartOfHour" if q.aggregation == "hour" else "toStartOfDay"
    cond, params = _filters(q, None)
    params.update(start=q.start, end=q.end)
    rows = store.query_dicts(
        f"SELECT bucket, sum(calls) AS calls, sum(error_calls) AS error_calls,"
        f" sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,"
        f" sum(cache_read_tokens) AS cache_read_tokens,"
        f" sum(cache_write_tokens) AS cache_write_tokens,"
        f" sum(reasoning_tokens) AS reasoning_tokens, sum(cost_usd) AS cost_usd"
        f" FROM {table} WHERE {cond}"
        f" AND bucket >= {trunc}(toDateTime({{start:DateTime64(3, 'UTC')}}, 'UTC'))"
        f" AND bucket < {{end:DateTime64(3, 'UTC')}}"
        f" GROUP BY bucket ORDER BY bucket",
        params,
    )
    return [
        {
            "bucket": r["bucket"].replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
            "calls": int(r["calls"]),
            "error_calls": int(r["error_calls"]),
            "tokens": _tokens(r),
            "cost_usd": _dec(r["cost_usd"]),
        }
        for r in rows
    ]


def projection(store: Any, q: AnalyticsQuery, now: datetime | None = None) -> dict[str, Any]:
    """Month-end cost from the month-to-date run rate (same tenant/model filters)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    month_end = month_start + timedelta(days=days_in_month)
    cond, params = _filters(q, None)
    params.update(start=month_start, now=now)
    rows = store.query_rows(
        f"SELECT sum(cost_usd), sum(calls) FROM usage_rollup_1h WHERE {cond}"
        " AND bucket >= {start:DateTime64(3, 'UTC')} AND bucket <= {now:DateTime64(3, 'UTC')}",
        params,
    )
    mtd = Decimal(rows[0][0] or 0)
    elapsed = Decimal((now - month_start).total_seconds())
    remaining = Decimal((month_end - now).total_seconds())
    per_day = (mtd / elapsed * 86400) if elapsed > 0 else Decimal(0)
    projected = mtd + (mtd / elapsed * remaining if elapsed > 0 else Decimal(0))
    q9 = Decimal("0.000000001")
    return {
        "month": f"{now.year:04d}-{now.month:02d}",
        "month_to_date_cost_usd": _dec(mtd.quantize(q9)),
        "month_to_date_calls": int(rows[0][1] or 0),
        "run_rate_usd_per_day": _dec(per_day.quantize(q9)),
        "projected_month_cost_usd": _dec(projected.quantize(q9)),
        "days_elapsed": round(float(elapsed) / 86400, 3),
        "days_in_month": days_in_month,
        "method": "month-to-date cost / elapsed time × whole month (hour rollup)",
    }


def existing_tables(store: Any, names: list[str]) -> set[str]:
    rows = store.query_rows(
        "SELECT name FROM system.tables WHERE database = currentDatabase()"
        " AND name IN {names:Array(String)}",
        {"names": names},
    )
    return {r[0] for r in rows}


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).isoformat().replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def optional_rows(
    store: Any, table: str, tenant: str | None, start: datetime | None, end: datetime | None
) -> list[dict[str, Any]]:
    """Newest rows of an optional table, filtered by tenant (and by time when given one).

    Tenant scoping never fails open: with ``tenant`` set, a table with neither a
    ``tenant`` column nor a ``scope`` map returns no rows.
    """
    cols = {
        r[0]: r[1]
        for r in store.query_rows(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase()"
            " AND table = {t:String}",
            {"t": table},
        )
    }
    engine = store.query_rows(
        "SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
        {"t": table},
    )
    # ReplacingMergeTree tables (alerts, anomalies, budgets) keep replays until a merge
    final = " FINAL" if engine and "Replacing" in str(engine[0][0]) else ""
    where: list[str] = []
    params: dict[str, Any] = {}
    if "deleted" in cols:
        where.append("deleted = 0")
    if tenant is not None:
        if "tenant" in cols:
            where.append("tenant = {tenant:String}")
        elif cols.get("scope", "").startswith("Map("):
            where.append("scope['tenant'] = {tenant:String}")
        else:
            return []
        params["tenant"] = tenant
    time_col = next((c for c in _TIME_COLUMNS if c in cols), None)
    if time_col is not None and start is not None and end is not None:
        where.append(f"`{time_col}` >= {{start:DateTime64(3, 'UTC')}}")
        where.append(f"`{time_col}` < {{end:DateTime64(3, 'UTC')}}")
        params.update(start=start, end=end)
    order = f" ORDER BY `{time_col}` DESC" if time_col else ""
    rows = store.query_dicts(
        f"SELECT * FROM `{table}`{final} WHERE {' AND '.join(where) or '1'}{order}"
        f" LIMIT {OPTIONAL_LIMIT}",
        params,
    )
    return [{k: _jsonable(v) for k, v in r.items()} for r in rows]


def optional_sections(
    store: Any, tenant: str | None, start: datetime | None, end: datetime | None
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str | None]]:
    """Alerts, anomalies and budgets (empty when their tables do not exist yet)."""
    candidates = [n for names in OPTIONAL_TABLES.values() for n in names]
    present = existing_tables(store, candidates)
    sections: dict[str, list[dict[str, Any]]] = {}
    sources: dict[str, str | None] = {}
    for section, names in OPTIONAL_TABLES.items():
        table = next((n for n in names if n in present), None)
        sources[section] = table
        # budgets are current state: not filtered by the query's time range
        timed = section != "budgets"
        sections[section] = (
            optional_rows(store, table, tenant, start if timed else None, end if timed else None)
            if table
            else []
        )
    return sections, sources


def analytics(store: Any, query: AnalyticsQuery, now: datetime | None = None) -> dict[str, Any]:
    """The whole ``/api/analytics/tokens`` answer (blocking; every query uses ``query.tenant``)."""
    sections, sources = optional_sections(store, query.tenant, query.start, query.end)
    return {
        "query": {
            "from": _jsonable(query.start),
            "to": _jsonable(query.end),
            "aggregation": query.aggregation,
            "model": query.model,
            "tenant": query.tenant,
        },
        "summary": summary(store, query),
        "models": models(store, query),
        "series": series(store, query),
        "projection": projection(store, query, now),
        **sections,
        "sources": sources,
    }


def keyring_for(settings: Any) -> KeyRing:
    """The key ring of ``settings.api_keys_file`` (open loopback access when unset)."""
    path = getattr(settings, "api_keys_file", None)
    return KeyRing.load(Path(path) if path else None)


def register_api(app: Any, rt: Any, ring: KeyRing | None = None) -> None:
    """Register ``GET /api/analytics/tokens`` on the faust ``app`` (``rt``: its Runtime)."""
    from faust.web import Request, Response, View

    keys = ring if ring is not None else keyring_for(rt.settings)

    @app.page("/api/analytics/tokens")
    class AnalyticsTokens(View):
        async def get(self, request: Request) -> Response:
            q = request.query
            try:
                tenant = authorize_request(
                    keys,
                    request,
                    q.get("tenant"),
                )
            except AuthError as exc:
                return self.error(exc.status, exc.reason)
            try:
                params = AnalyticsQuery.from_params({k: q[k] for k in q})
            except ValueError as exc:
                return self.error(400, str(exc))
            params = replace(params, tenant=tenant)  # ALWAYS the key's tenant for scoped keys
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                rt.query_executor, analytics, getattr(rt, "query_store", rt.store), params
            )
            return self.json(result)
