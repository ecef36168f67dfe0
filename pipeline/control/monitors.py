"""Real-time monitors: stream windows → anomalies and rate alerts → the ``alerts`` topic.

``register_monitors(app, rt, costed_topic, alerts_topic)`` adds to the worker app:

* agent ``monitors`` on ``usage.costed`` (its own subscription next to the sink and
  the budget mapper). Per batch: Arrow parses the JSON and sums it per (tenant,
  feature, model, window) in C++ in a side thread (GIL released; Python fallback),
  ``BatchWindows.add_sums`` merges one delta per key and window (``add_batch``
  semantics), then every window closed by the new watermark goes to the
  ``AnomalyDetector`` (scopes ``tenant`` and ``tenant+feature``), the
  ``SpendRateEvaluator`` and the ``UnpricedCostEvaluator``. Anomaly rows are inserted
  into ClickHouse ``anomalies``; each anomaly (``Anomaly.to_alert()``) and rate alert
  is produced to ``alerts`` (key = alert id), where the control plane's ``alerts``
  agent stores and delivers it. The batch is acked only after the insert finished and
  the broker confirmed every send.
* agent ``monitors-dlq`` on ``usage.dlq``: dead letters counted per minute of their
  Kafka timestamp, system-wide; a minute is evaluated (``DlqRateEvaluator``) once
  wall-clock time is ``DLQ_GRACE_S`` past its end. Letters older than
  ``DLQ_MAX_AGE_S`` are ignored (a first start must not alert on last month's DLQ).
* timer ``monitors-tick`` (every ``tick_s``): closes the windows of an idle stream
  (no costed batch for ``idle_close_s``) with the wall clock as watermark, and due
  DLQ minutes.

Thresholds: from the rules file (``settings.alert_rules``) via ``thresholds(rules,
kind)``; for a kind no rule gives a threshold the defaults below apply
(``DEFAULT_SPEND_USD_PER_HOUR``, ``DEFAULT_UNPRICED_CALLS``, ``DEFAULT_DLQ_PER_MINUTE``):
those alerts are stored in ClickHouse (``GET /v1/alerts``) but match no rule, so they
are delivered nowhere.

State is in memory. At start the detector's history is rebuilt from ClickHouse:
``usage_rollup_1h`` for the 7 days before the current hour (hourly sums per scope,
exactly the detector's state) and its cooldowns from ``anomalies``; the spend-rate
and unpriced cooldowns from ``alerts``. A restart loses: the open windows (events
already acked but in windows not yet closed, ≤ window + grace ≈ 2 min: not evaluated
after the restart; they are in ClickHouse all the same), the current hour of the
detector's history, the spend-rate sliding hour (the rate under-reads for up to an
hour) and partial DLQ minute counts. Alert ids are deterministic (anomaly: scope,
metric, window start; rates: scope, threshold, window), so a replay after a restart
re-produces the same ids and the alerts agent stores/delivers each once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from prometheus_client import Counter, Gauge

from pipeline.alerts.rules import (
    DEFAULT_UNPRICED_THRESHOLD,
    DlqRateEvaluator,
    RuleSet,
    SpendRateEvaluator,
    UnpricedCostEvaluator,
    load_rules,
    thresholds,
)
from pipeline.anomaly import METRICS, AnomalyConfig, AnomalyDetector
from pipeline.windows import (
    DEFAULT_GRACE_S,
    DEFAULT_WINDOW_S,
    KEY_DIMS,
    TOKEN_KINDS,
    BatchResult,
    WindowAgg,
    WindowAggregator,
    WindowKey,
    window_start,
)
from schemas.alerts import AlertEvent, AlertKind, Anomaly
from schemas.usage import wire_ts

log = logging.getLogger(__name__)

DEFAULT_SPEND_USD_PER_HOUR: tuple[Decimal, ...] = (Decimal(100),)
DEFAULT_UNPRICED_CALLS: tuple[Decimal, ...] = (DEFAULT_UNPRICED_THRESHOLD,)
DEFAULT_DLQ_PER_MINUTE: tuple[Decimal, ...] = (Decimal(100),)
DLQ_GRACE_S = 10
DLQ_MAX_AGE_S = 3_600

ANOMALY_COLUMNS = (
    "anomaly_id",
    "scope",
    "metric",
    "window_start",
    "window_s",
    "value",
    "baseline",
    "score",
    "ratio",
    "detected_at",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO = Decimal(0)


@dataclass(frozen=True)
class MonitorConfig:
    """Monitor settings (code defaults; documented in docs/alerts.md)."""

    window_s: int = DEFAULT_WINDOW_S
    grace_s: int = DEFAULT_GRACE_S
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)
    spend_usd_per_hour: tuple[Decimal, ...] = DEFAULT_SPEND_USD_PER_HOUR
    unpriced_calls: tuple[Decimal, ...] = DEFAULT_UNPRICED_CALLS
    dlq_per_minute: tuple[Decimal, ...] = DEFAULT_DLQ_PER_MINUTE
    history_days: int = 7
    tick_s: float = 5.0
    idle_close_s: float = 30.0
    take: int = 256
    take_s: float = 0.2

    def __post_init__(self) -> None:
        if self.window_s % 60:
            raise ValueError("window_s must be a whole number of minutes")
        if self.window_s != self.anomaly.window_s:
            raise ValueError("window_s and anomaly.window_s differ")

    @property
    def dims(self) -> tuple[str, ...]:
        """Window key dims: those the anomaly scopes, spend rate and unpriced rules read."""
        used = {"tenant", "model"} | {d for scope in self.anomaly.scopes for d in scope}
        return tuple(d for d in KEY_DIMS if d in used)


DEFAULT_DIMS: tuple[str, ...] = ("tenant", "feature", "model")
"""Window key dims kept by default: what the default consumers read (anomaly scopes
tenant and tenant+feature, spend rate per tenant, unpriced per tenant+model). The
other dims (user, team, api_key_id) are left '' so a window is not one per user."""
_INT_COLS = TOKEN_KINDS


@functools.cache
def _arrow_parse(dims: tuple[str, ...]) -> pa_json.ParseOptions:
    schema = pa.schema(
        [("ts", pa.string()), ("status", pa.string()), ("priced", pa.bool_())]
        + [(d, pa.string()) for d in dims]
        + [(k, pa.int64()) for k in _INT_COLS]
        + [("cost_usd", pa.string())]
    )
    return pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")


_BETWEEN = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*\{")
_TS_LEN = len("2026-01-01T00:00:00.000Z")


@dataclass
class CostedBatch:
    """One batch of costed records, already summed per (key, window) — the windows' input."""

    deltas: dict[tuple[WindowKey, datetime], WindowAgg]
    max_ts: datetime | None
    events: int


class _Minutes:
    """'YYYY-MM-DDTHH:MM' → start of its window (cached: a batch spans few minutes)."""

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self.size = timedelta(seconds=window_s)
        self.cache: dict[str, datetime] = {}

    def start(self, minute: str) -> datetime:
        got = self.cache.get(minute)
        if got is None:
            got = self.cache[minute] = window_start(
                datetime.fromisoformat(minute + ":00+00:00"), self.window_s
            )
        return got


def _normal_ts(ts: str) -> str:
    """The costing processor's ts format ('…T12:34:56.789Z'); anything else is re-rendered."""
    if len(ts) == _TS_LEN and ts[-1] == "Z":
        return ts
    return wire_ts(datetime.fromisoformat(ts))


def _group(
    groups: dict[tuple[str, ...], list[Any]], key: tuple[str, ...], calls: int, vals: Sequence[Any]
) -> None:
    acc = groups.get(key)
    if acc is None:
        groups[key] = [calls, *vals]
    else:
        acc[0] += calls
        for i, v in enumerate(vals, 1):
            acc[i] += v


def _to_batch(
    groups: dict[tuple[str, ...], list[Any]],
    max_ts: str | None,
    events: int,
    window_s: int,
    dims: tuple[str, ...] = DEFAULT_DIMS,
) -> CostedBatch:
    minutes = _Minutes(window_s)
    deltas: dict[tuple[WindowKey, datetime], WindowAgg] = {}
    for key, (calls, errors, unpriced, i, o, cr, cw, rs, cost) in groups.items():
        start = minutes.start(key[-1])
        wkey = WindowKey(**dict(zip(dims, key, strict=False)))
        agg = deltas.get((wkey, start))
        if agg is None:
            agg = deltas[(wkey, start)] = WindowAgg(key=wkey, start=start, end=start + minutes.size)
        agg.calls += calls
        agg.error_calls += errors
        agg.unpriced_calls += unpriced
        agg.input_tokens += i
        agg.output_tokens += o
        agg.cache_read_tokens += cr
        agg.cache_write_tokens += cw
        agg.reasoning_tokens += rs
        agg.cost_usd += cost
    ts = datetime.fromisoformat(max_ts) if max_ts else None
    return CostedBatch(deltas, ts, events)


def _group_python(
    values: Iterable[bytes | None], dims: tuple[str, ...] = DEFAULT_DIMS
) -> tuple[dict[tuple[str, ...], list[Any]], str | None, int]:
    groups: dict[tuple[str, ...], list[Any]] = {}
    max_ts: str | None = None
    events = 0
    for value in values:
        try:
            items = json.loads(value or b"[]")
        except ValueError:
            continue  # not ours to judge (the sink dead-letters what it cannot insert)
        if isinstance(items, dict):
            items = [items]
        for d in items:
            try:
                ts = _normal_ts(d["ts"])
                key = (*(d.get(k) or "" for k in dims), ts[:16])
                vals = (
                    d.get("status") == "error",
                    not d.get("priced", True),
                    *(int(d.get(k) or 0) for k in _INT_COLS),
                    Decimal(d.get("cost_usd") or 0),
                )
            except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError):
                continue
            _group(groups, key, 1, vals)
            events += 1
            if max_ts is None or ts > max_ts:
                max_ts = ts
    return groups, max_ts, events


def _group_arrow(
    values: Sequence[bytes | None], dims: tuple[str, ...] = DEFAULT_DIMS
) -> tuple[dict[tuple[str, ...], list[Any]], str | None, int]:
    """The same as ``_group_python`` in Arrow (C++, no per-record Python).

    The JSON arrays become JSON lines by splitting at ``},{`` (whitespace allowed); a
    split inside a string leaves that string unterminated (quotes inside strings are
    escaped), so the read fails and the caller falls back to Python.
    """
    lines = []
    for value in values:
        v = (value or b"").strip()
        if v.startswith(b"["):
            v = v[1:-1].strip()
        if v:
            lines.append(_BETWEEN.sub(b"}\n{", v))
    if not lines:
        return {}, None, 0
    body = b"\n".join(lines)
    table = pa_json.read_json(
        io.BytesIO(body),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=max(1 << 20, len(body) + 1)),
        parse_options=_arrow_parse(dims),
    )
    ts = table["ts"]
    n = table.num_rows
    if (
        ts.null_count
        or pc.min(pc.utf8_length(ts)).as_py() != _TS_LEN
        or not pc.all(pc.ends_with(ts, "Z")).as_py()
    ):
        raise ValueError("unexpected ts format")
    cols = {d: pc.fill_null(table[d], "") for d in dims}
    cols["minute"] = pc.utf8_slice_codeunits(ts, 0, 16)
    cols["e"] = pc.cast(pc.fill_null(pc.equal(table["status"], "error"), False), pa.int64())
    cols["u"] = pc.cast(pc.invert(pc.fill_null(table["priced"], True)), pa.int64())
    for k in _INT_COLS:
        cols[k] = pc.fill_null(table[k], 0)
    cols["cost"] = pc.fill_null(pc.cast(table["cost_usd"], pa.decimal128(38, 9)), 0)
    cols["n"] = pa.repeat(pa.scalar(1, pa.int64()), n)
    keys = [*dims, "minute"]
    sums = ["n", "e", "u", *_INT_COLS, "cost"]
    grouped = pa.table(cols).group_by(keys).aggregate([(c, "sum") for c in sums]).to_pydict()
    groups: dict[tuple[str, ...], list[Any]] = {}
    key_cols = [grouped[k] for k in keys]
    sum_cols = [grouped[f"{c}_sum"] for c in sums]
    for row in range(len(key_cols[0])):
        groups[tuple(col[row] for col in key_cols)] = [col[row] for col in sum_cols]
    return groups, pc.max(ts).as_py(), n


def decode_costed(
    values: Sequence[bytes | None],
    window_s: int = DEFAULT_WINDOW_S,
    dims: tuple[str, ...] = DEFAULT_DIMS,
) -> CostedBatch:
    """``usage.costed`` message values (JSON arrays or objects) → per-(key, window) sums.

    Keys keep only ``dims`` (the others are ''). Arrow parses and groups the batch;
    any surprise (a value it cannot read, a non-standard ts) falls back to the same
    grouping in Python, which skips bad records.
    """
    try:
        groups, max_ts, n = _group_arrow(values, dims)
    except (pa.ArrowException, ValueError):
        groups, max_ts, n = _group_python(values, dims)
    return _to_batch(groups, max_ts, n, window_s, dims)


class BatchWindows(WindowAggregator):
    """``WindowAggregator`` fed with per-batch sums (``add_batch`` semantics, no records)."""

    def add_sums(self, batch: CostedBatch, now: datetime | None = None) -> BatchResult:
        accepted = late = 0
        for slot, delta in batch.deltas.items():
            if self._is_late(delta.start):
                late += delta.calls
                continue
            accepted += delta.calls
            current = self._windows.get(slot)
            if current is None:
                self._windows[slot] = delta
            else:
                current.merge(delta)
        if batch.max_ts is not None:
            max_ts = batch.max_ts
            if now is not None:
                max_ts = min(max_ts, now + timedelta(seconds=self.max_skew_s))
            self._advance(max_ts)
        self.late_dropped += late
        return BatchResult(accepted=accepted, late_dropped=late, keys_updated=len(batch.deltas))


@dataclass
class Outcome:
    """What one step produced: anomaly rows to insert, alerts to produce."""

    anomalies: list[Anomaly] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        self.anomalies.extend(other.anomalies)
        self.alerts.extend(other.alerts)


def _levels(
    rules: RuleSet | None, kind: AlertKind, default: tuple[Decimal, ...]
) -> tuple[Decimal, ...]:
    found = thresholds(rules, kind) if rules is not None else ()
    return found or default


def _epoch_s(ts: datetime) -> int:
    return int((ts - _EPOCH).total_seconds())


class Monitors:
    """The pure part: windows, detector, evaluators and DLQ minute counts. No I/O, no clock."""

    def __init__(self, config: MonitorConfig | None = None, rules: RuleSet | None = None) -> None:
        cfg = self.config = config or MonitorConfig()
        self.windows = BatchWindows(cfg.window_s, cfg.grace_s)
        self.detector = AnomalyDetector(cfg.anomaly)
        self.spend = SpendRateEvaluator(
            _levels(rules, "spend_rate", cfg.spend_usd_per_hour), window_s=cfg.window_s
        )
        self.unpriced = UnpricedCostEvaluator(_levels(rules, "unpriced_cost", cfg.unpriced_calls))
        self.dlq = DlqRateEvaluator(_levels(rules, "dlq_rate", cfg.dlq_per_minute))
        self.dlq_counts: dict[int, int] = {}  # minute start (epoch s) -> dead letters
        self.history_until = 0  # windows before this (epoch s) are in the loaded history
        self.events = 0

    # -- costed records -------------------------------------------------------------------
    def on_costed(self, batch: CostedBatch, now: datetime) -> Outcome:
        """Add a batch; evaluate every window it closed."""
        self.windows.add_sums(batch, now=now)
        self.events += batch.events
        return self._evaluate(list(self.windows.closed_windows()), now)

    def close_until(self, watermark: datetime, now: datetime) -> Outcome:
        """Close windows up to ``watermark`` (wall clock of an idle stream)."""
        return self._evaluate(list(self.windows.closed_windows(watermark)), now)

    def _evaluate(self, closed: list[WindowAgg], now: datetime) -> Outcome:
        out = Outcome()
        if not closed:
            return out
        # Windows already counted in the history loaded from ClickHouse must not be
        # recorded twice (a replayed backlog); they still feed the rate evaluators.
        cut = self.history_until
        fresh = [w for w in closed if _epoch_s(w.start) >= cut] if cut else closed
        if fresh:
            out.anomalies = self.detector.observe(fresh, now)
            out.alerts = [a.to_alert() for a in out.anomalies]
        out.alerts.extend(self.spend.observe(closed))
        out.alerts.extend(self.unpriced.observe(closed))
        return out

    # -- dead letters ---------------------------------------------------------------------
    def on_dead_letters(self, timestamps: Iterable[float], now: float) -> Outcome:
        """Count dead letters (Kafka timestamps, epoch s) per minute; evaluate due minutes."""
        oldest = now - DLQ_MAX_AGE_S
        counts = self.dlq_counts
        for t in timestamps:
            if t >= oldest:
                minute = int(t) - int(t) % 60
                counts[minute] = counts.get(minute, 0) + 1
        return self.close_dlq(now)

    def close_dlq(self, now: float) -> Outcome:
        out = Outcome()
        for minute in sorted(m for m in self.dlq_counts if m + 60 + DLQ_GRACE_S <= now):
            count = self.dlq_counts.pop(minute)
            out.alerts.extend(self.dlq.observe(_EPOCH + timedelta(seconds=minute), count))
        return out

    # -- state from ClickHouse ------------------------------------------------------------
    def load_history(
        self,
        rollup_rows: Iterable[dict[str, Any]],
        fired_anomalies: Iterable[tuple[dict[str, str], str, int]],
        fired_rates: Iterable[tuple[str, str, dict[str, str], str, int]],
        until: int,
    ) -> None:
        """Rebuild detector history and cooldowns.

        ``rollup_rows``: hourly sums (``bucket`` epoch s, the scope dims, ``cost_usd``,
        ``tokens``, ``calls``) for hours before ``until``. ``fired_anomalies``:
        (scope, metric, window start). ``fired_rates``: (kind, tenant, scope, threshold,
        window start) of spend-rate / unpriced alerts.
        """
        acfg = self.config.anomaly
        scopes: dict[str, dict[str, Any]] = {}
        for row in rollup_rows:
            b = int(row["bucket"])
            vals = (Decimal(row["cost_usd"]), Decimal(row["tokens"]), Decimal(row["calls"]))
            for scope in acfg.scopes:
                skey = json.dumps({d: row[d] for d in scope}, sort_keys=True)
                h = scopes.setdefault(
                    skey, {"first_start": b, "last_start": b, "buckets": {}, "last_fired": {}}
                )
                h["first_start"] = min(h["first_start"], b)
                h["last_start"] = max(h["last_start"], b + acfg.bucket_s - acfg.window_s)
                acc = h["buckets"].setdefault(str(b), [_ZERO] * len(METRICS))
                for i, v in enumerate(vals):
                    acc[i] += v
        for h in scopes.values():
            h["buckets"] = {b: [str(v) for v in vals] for b, vals in h["buckets"].items()}
        for scope_dims, metric, start in fired_anomalies:
            skey = json.dumps(dict(scope_dims), sort_keys=True)
            if skey in scopes:
                fired = scopes[skey]["last_fired"]
                fired[metric] = max(int(start), fired.get(metric, 0))
        self.detector = AnomalyDetector.from_state({"version": 1, "scopes": scopes}, acfg)
        self.history_until = until
        for kind, tenant, scope_dims, level, start in fired_rates:
            evaluator = self.spend if kind == "spend_rate" else self.unpriced
            full = {"tenant": tenant, **scope_dims}
            key = "\x1f".join(f"{k}={v}" for k, v in sorted(full.items()))
            slot = f"{key}|{Decimal(level)}"
            evaluator.cooldowns.fired[slot] = max(
                int(start), evaluator.cooldowns.fired.get(slot, 0)
            )


def read_history(store: Any, config: MonitorConfig, now: datetime) -> dict[str, Any]:
    """Blocking: what ``Monitors.load_history`` needs, read from ClickHouse."""
    acfg = config.anomaly
    until = _epoch_s(now) - _epoch_s(now) % 3_600
    since = until - config.history_days * 86_400
    dims = sorted({d for scope in acfg.scopes for d in scope})
    cols = ", ".join(dims)
    rollup = store.query_dicts(
        f"SELECT {cols}, toUnixTimestamp(bucket) AS bucket, sum(cost_usd) AS cost_usd,"
        " sum(input_tokens + output_tokens) AS tokens, sum(calls) AS calls"
        " FROM usage_rollup_1h WHERE bucket >= toDateTime({a:UInt32}, 'UTC')"
        " AND bucket < toDateTime({b:UInt32}, 'UTC')"
        f" GROUP BY {cols}, bucket",
        {"a": since, "b": until},
    )
    recent = _epoch_s(now) - max(acfg.cooldown_s, 3_600) - 600
    anomalies = [
        (dict(r[0]), str(r[1]), int(r[2]))
        for r in store.query_rows(
            "SELECT scope, metric, toUnixTimestamp(max(window_start)) FROM anomalies"
            " WHERE window_start >= toDateTime({a:UInt32}, 'UTC') GROUP BY scope, metric",
            {"a": recent},
        )
    ]
    rates = []
    for kind, tenant, scope, data, ts in store.query_rows(
        "SELECT kind, tenant, scope, data, toUnixTimestamp(ts) FROM alerts FINAL"
        " WHERE kind IN ('spend_rate', 'unpriced_cost') AND ts >= toDateTime({a:UInt32}, 'UTC')",
        {"a": recent},
    ):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            level = str(json.loads(data)["threshold"])
            # both evaluators stamp the alert with its window's end
            rates.append((str(kind), str(tenant), dict(scope), level, int(ts) - config.window_s))
    return {
        "rollup_rows": rollup,
        "fired_anomalies": anomalies,
        "fired_rates": rates,
        "until": until,
    }


def anomaly_row(a: Anomaly) -> tuple[Any, ...]:
    """A row of ClickHouse ``anomalies`` (``ANOMALY_COLUMNS`` order)."""
    return (
        a.anomaly_id,
        dict(a.scope),
        a.metric,
        a.window_start,
        a.window_s,
        a.value,
        a.baseline,
        a.score,
        a.ratio,
        a.detected_at,
    )


SendAlert = Callable[[AlertEvent], Awaitable[Awaitable[Any]]]
"""Enqueue one alert; the awaited result is the broker-confirmation future."""
InsertAnomalies = Callable[[list[tuple[Any, ...]]], Awaitable[Any]]


class MonitorRunner:
    """The async glue: serialises steps, makes their effects durable, then acks."""

    def __init__(
        self,
        monitors: Monitors,
        send: SendAlert,
        insert: InsertAnomalies,
        clock: Callable[[], float] = time.time,
        on_outcome: Callable[[Outcome], None] | None = None,
        decode_executor: Executor | None = None,
    ) -> None:
        self.decode_executor = decode_executor
        self.monitors = monitors
        self.send = send
        self.insert = insert
        self.clock = clock
        self.on_outcome = on_outcome
        self.lock = asyncio.Lock()
        self.last_batch = clock()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def emit(self, outcome: Outcome) -> None:
        """Insert the anomaly rows and produce every alert; return once all are durable."""
        if not outcome.anomalies and not outcome.alerts:
            return
        rows = [anomaly_row(a) for a in outcome.anomalies]
        insert = asyncio.ensure_future(self.insert(rows)) if rows else None
        try:
            futures = [await self.send(a) for a in outcome.alerts]
            await asyncio.gather(*futures)
        finally:
            if insert is not None:
                await insert
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    async def costed(
        self, values: Sequence[bytes | None], ack: Callable[[], Awaitable[Any]]
    ) -> None:
        cfg = self.monitors.config
        if self.decode_executor is None:
            batch = decode_costed(values, cfg.window_s, cfg.dims)
        else:  # Arrow releases the GIL: parsing overlaps the costing and sink agents
            loop = asyncio.get_running_loop()
            batch = await loop.run_in_executor(
                self.decode_executor, decode_costed, values, cfg.window_s, cfg.dims
            )
        async with self.lock:
            self.last_batch = self.clock()
            await self.emit(self.monitors.on_costed(batch, self._now()))
        await ack()

    async def dead_letters(
        self, timestamps: Sequence[float], ack: Callable[[], Awaitable[Any]]
    ) -> None:
        async with self.lock:
            await self.emit(self.monitors.on_dead_letters(timestamps, self.clock()))
        await ack()

    async def tick(self, idle_close_s: float) -> None:
        """Close due DLQ minutes, and the windows of a stream idle for ``idle_close_s``."""
        async with self.lock:
            now = self.clock()
            out = self.monitors.close_dlq(now)
            if now - self.last_batch >= idle_close_s and self.monitors.windows.open_windows:
                out.extend(self.monitors.close_until(self._now(), self._now()))
            await self.emit(out)


def _rules(app: Any, settings: Any) -> RuleSet | None:
    cp = getattr(app, "tokenpipe_control", None)
    if cp is not None and getattr(cp, "rules", None) is not None:
        rules: RuleSet = cp.rules
        return rules
    path = getattr(settings, "alert_rules", None)
    return load_rules(Path(path)) if path else None


def register_monitors(
    app: Any,
    rt: Any,
    costed_topic: Any,
    alerts_topic: Any,
    dlq_topic: Any = None,
    config: MonitorConfig | None = None,
) -> MonitorRunner:
    """Add the monitors agents and timer to ``app`` (see the module docstring)."""
    from pipeline.app import _topic
    from schemas.topics import USAGE_DLQ, topics

    cfg = config or MonitorConfig()
    settings = rt.settings
    if dlq_topic is None:
        dlq_topic = _topic(app, settings, topics()[USAGE_DLQ])
    monitors = Monitors(cfg, _rules(app, settings))
    registry = rt.metrics.registry
    m_events = Counter("tokenpipe_monitor_events", "Costed events windowed", registry=registry)
    m_late = Gauge("tokenpipe_monitor_late_dropped", "Late events not windowed", registry=registry)
    m_open = Gauge("tokenpipe_monitor_open_windows", "Open stream windows", registry=registry)
    m_anomalies = Counter("tokenpipe_anomalies", "Anomalies detected", registry=registry)
    m_alerts = Counter("tokenpipe_monitor_alerts", "Alerts produced", ["kind"], registry=registry)

    def counted(outcome: Outcome) -> None:
        m_anomalies.inc(len(outcome.anomalies))
        for a in outcome.alerts:
            m_alerts.labels(a.kind).inc()

    async def send(alert: AlertEvent) -> Awaitable[Any]:
        fut: Awaitable[Any] = await alerts_topic.send(
            key=alert.alert_id.encode(), value=alert.model_dump_json().encode(), force=True
        )
        return fut

    async def insert(rows: list[tuple[Any, ...]]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            rt.executor, rt.store.insert_rows, "anomalies", rows, ANOMALY_COLUMNS
        )

    runner = MonitorRunner(
        monitors,
        send,
        insert,
        on_outcome=counted,
        decode_executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitors"),
    )
    app.tokenpipe_monitors = runner
    loaded = asyncio.Event()

    async def load() -> None:
        if loaded.is_set():
            return
        loop = asyncio.get_running_loop()
        try:
            hist = await loop.run_in_executor(
                rt.query_executor, read_history, rt.query_store, cfg, datetime.now(UTC)
            )
            async with runner.lock:
                monitors.load_history(**hist)
            log.info(
                "monitors: baseline of %d scopes loaded from ClickHouse",
                monitors.detector.scope_count,
            )
        except Exception:  # a missing history only delays detection by min_history_s
            log.exception("monitors: could not load the baseline from ClickHouse")
        loaded.set()

    @app.agent(costed_topic, name="monitors")
    async def monitors_agent(stream: Any) -> None:
        await load()
        async for batch in stream.noack_take(cfg.take, cfg.take_s):

            async def ack(events: list[Any] = batch) -> None:
                for ev in events:
                    await stream.ack(ev)

            before = monitors.events
            await runner.costed([ev.message.value for ev in batch], ack)
            m_events.inc(monitors.events - before)
            m_late.set(monitors.windows.late_dropped)
            m_open.set(monitors.windows.open_windows)

    @app.agent(dlq_topic, name="monitors-dlq")
    async def dlq_agent(stream: Any) -> None:
        async for batch in stream.noack_take(500, 1.0):

            async def ack(events: list[Any] = batch) -> None:
                for ev in events:
                    await stream.ack(ev)

            await runner.dead_letters([float(ev.message.timestamp) for ev in batch], ack)

    @app.timer(cfg.tick_s, name="monitors-tick")
    async def tick() -> None:
        if loaded.is_set():
            await runner.tick(cfg.idle_close_s)
            m_open.set(monitors.windows.open_windows)

    return runner
