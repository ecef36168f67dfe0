"""Deterministic synthetic usage for the dashboards: tests, the renderer, demos.

``generate_rows(n, days, end, seed)`` yields ``usage_raw`` rows (in
``RAW_COLUMNS`` order) for a small fictional customer base: four tenants of
different sizes, teams, users and API keys per tenant, seven features with their
own token profiles, and seven models from three providers (one unpriced). Costs
follow the usage contract: ``input_tokens`` includes cache reads and writes,
``output_tokens`` includes reasoning, ``input_cost_usd`` prices only the uncached
input, ``cost_usd`` is the sum of the parts, Decimal with 9 places. The shape is
chosen so every dashboard panel has something to show: a feature with tiny
outputs on an expensive model (downgrade candidate), large uncached prompts
(caching opportunity), a heavily cached feature (savings), reasoning on o3-mini,
errors and unpriced calls.

``load(store, ...)`` inserts them through ``Store.insert_rows`` in batches (the
rollup materialized views fill the rollups on insert). Same arguments, same rows.

With ``extras=True`` (the default) ``load`` also fills the tables of the Budgets
and Anomalies dashboards from those rows (``generate_extras``): ``budgets`` (the
definitions' history: ``DEMO_BUDGETS``, one changed limit and one deleted budget),
``alerts`` (budget threshold crossings replayed from the usage rows the way the
ledger fires them, once per budget, period and threshold; spend-rate and
unpriced-model alerts from the same rows; synthetic anomalies and DLQ-rate
incidents), ``anomalies`` and ``webhook_deliveries`` (attempts with retries,
timeouts and dead letters). The usage rows are the same with or without extras.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline.budgets.periods import period_start as budget_period_start
from pipeline.control.monitors import anomaly_row
from pipeline.control.wire import alert_row, budget_row
from pipeline.migrate import DECLARED_SCHEMA
from pipeline.store import Store
from schemas.alerts import AlertEvent, Anomaly, Severity, WebhookDelivery, stable_id
from schemas.budgets import BudgetDefinition
from schemas.budgets import alert_id as budget_alert_id

RAW_COLUMNS: list[str] = [c for c, _ in DECLARED_SCHEMA["usage_raw"] if c != "ingested_at"]

_NANO = Decimal("0.000000001")
_PER_TOKEN = Decimal(1) / Decimal(1_000_000)


@dataclass(frozen=True)
class Model:
    provider: str
    name: str
    input_per_m: Decimal  # USD per 1M uncached input tokens
    cache_read_per_m: Decimal
    cache_write_per_m: Decimal
    output_per_m: Decimal
    priced: bool = True
    reasoning: bool = False


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            "openai", "gpt-4o", Decimal("2.50"), Decimal("1.25"), Decimal("2.50"), Decimal("10.00")
        ),
        Model(
            "openai",
            "gpt-4o-mini",
            Decimal("0.15"),
            Decimal("0.075"),
            Decimal("0.15"),
            Decimal("0.60"),
        ),
        Model(
            "openai",
            "o3-mini",
            Decimal("1.10"),
            Decimal("0.55"),
            Decimal("1.10"),
            Decimal("4.40"),
            reasoning=True,
        ),
        Model(
            "anthropic",
            "claude-sonnet-4",
            Decimal("3.00"),
            Decimal("0.30"),
            Decimal("3.75"),
            Decimal("15.00"),
        ),
        Model(
            "anthropic",
            "claude-3-5-haiku",
            Decimal("0.80"),
            Decimal("0.08"),
            Decimal("1.00"),
            Decimal("4.00"),
        ),
        Model(
            "google",
            "gemini-2.0-flash",
            Decimal("0.10"),
            Decimal("0.025"),
            Decimal("0.10"),
            Decimal("0.40"),
        ),
        Model(
            "selfhosted",
            "llama-3.1-70b-local",
            Decimal(0),
            Decimal(0),
            Decimal(0),
            Decimal(0),
            priced=False,
        ),
    )
}


@dataclass(frozen=True)
class Feature:
    name: str
    models: tuple[tuple[str, float], ...]  # (model, weight)
    input_median: int
    output_median: int
    cache_read_share: float  # typical share of input read from cache (0 = never cached)
    weight: float


FEATURES: tuple[Feature, ...] = (
    Feature("chat", (("gpt-4o", 3), ("gpt-4o-mini", 4), ("claude-sonnet-4", 2)), 1500, 400, 0.3, 5),
    Feature("search", (("gpt-4o-mini", 3), ("gemini-2.0-flash", 3)), 6000, 200, 0.0, 3),
    Feature("summarize", (("claude-3-5-haiku", 3), ("gpt-4o", 1)), 8000, 300, 0.05, 2),
    Feature("code-review", (("claude-sonnet-4", 5), ("o3-mini", 1)), 12000, 800, 0.7, 2),
    Feature(
        "agent",
        (("o3-mini", 3), ("claude-sonnet-4", 2), ("llama-3.1-70b-local", 0.3)),
        4000,
        600,
        0.4,
        2,
    ),
    Feature("classify", (("gpt-4o", 4), ("claude-sonnet-4", 1)), 800, 8, 0.0, 3),
    Feature(
        "extract", (("gpt-4o-mini", 2), ("gemini-2.0-flash", 1), ("gpt-4o", 1)), 3000, 150, 0.1, 2
    ),
)


@dataclass(frozen=True)
class Tenant:
    name: str
    weight: float
    teams: tuple[str, ...]
    users: int
    keys: int


TENANTS: tuple[Tenant, ...] = (
    Tenant("acme", 5, ("platform", "support", "research"), 14, 4),
    Tenant("globex", 3, ("core", "growth"), 9, 3),
    Tenant("initech", 1.5, ("it", "finance"), 6, 2),
    Tenant("umbrella", 0.5, ("lab",), 3, 1),
)


def _cost(tokens: int, per_m: Decimal) -> Decimal:
    return (Decimal(tokens) * per_m * _PER_TOKEN).quantize(_NANO)


def _lognormal(rng: random.Random, median: int, sigma: float = 0.6) -> int:
    return max(1, int(rng.lognormvariate(math.log(median), sigma)))


def _diurnal_weight(ts: datetime) -> float:
    """Busier in working hours (UTC) and on weekdays."""
    hour = ts.hour + ts.minute / 60
    day = 0.35 + 0.65 * math.exp(-(((hour - 14) / 5) ** 2))
    return day * (0.45 if ts.weekday() >= 5 else 1.0)


def default_end() -> datetime:
    """The default end of the data: now, to the minute (UTC)."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def generate_rows(
    n: int = 50_000, *, days: int = 30, end: datetime | None = None, seed: int = 7
) -> Iterator[tuple]:
    """``n`` usage_raw rows with ``ts`` in ``[end - days, end)``, deterministic for equal args."""
    end = (end or default_end()).astimezone(UTC)
    start = end - timedelta(days=days)
    span = (end - start).total_seconds()
    rng = random.Random(seed)
    feature_weights = [f.weight for f in FEATURES]
    tenant_weights = [t.weight for t in TENANTS]
    people = {
        t.name: [
            (f"{t.name}-user{i:02d}", t.teams[i % len(t.teams)], f"{t.name}-key{i % t.keys + 1}")
            for i in range(t.users)
        ]
        for t in TENANTS
    }
    for i in range(n):
        while True:  # rejection sampling of the diurnal/weekly shape
            ts = start + timedelta(seconds=rng.random() * span)
            if rng.random() < _diurnal_weight(ts):
                break
        ts = ts.replace(microsecond=(ts.microsecond // 1000) * 1000)
        tenant = rng.choices(TENANTS, tenant_weights)[0]
        # a few heavy users per tenant: Zipf-like pick
        idx = min(int(rng.paretovariate(1.2)) - 1, tenant.users - 1)
        user, team, key = people[tenant.name][idx]
        feature = rng.choices(FEATURES, feature_weights)[0]
        model = MODELS[
            rng.choices([m for m, _ in feature.models], [w for _, w in feature.models])[0]
        ]
        status = "error" if rng.random() < 0.02 else "ok"
        input_tokens = _lognormal(rng, feature.input_median)
        output_tokens = 0 if status == "error" else _lognormal(rng, feature.output_median, 0.5)
        cache_read = 0
        cache_write = 0
        if feature.cache_read_share > 0 and rng.random() < 0.85:
            share = min(0.95, max(0.0, rng.gauss(feature.cache_read_share, 0.1)))
            cache_read = int(input_tokens * share)
            if model.provider == "anthropic" and rng.random() < 0.1:
                cache_write = int((input_tokens - cache_read) * 0.5)
        reasoning = int(output_tokens * rng.uniform(0.4, 0.8)) if model.reasoning else 0
        uncached = input_tokens - cache_read - cache_write
        if model.priced:
            c_in = _cost(uncached, model.input_per_m)
            c_cr = _cost(cache_read, model.cache_read_per_m)
            c_cw = _cost(cache_write, model.cache_write_per_m)
            c_out = _cost(output_tokens, model.output_per_m)
        else:
            c_in = c_cr = c_cw = c_out = Decimal(0)
        row = {
            "event_id": f"demo-{seed}-{i:08d}",
            "ts": ts,
            "tenant": tenant.name,
            "user": user,
            "team": team,
            "feature": feature.name,
            "api_key_id": key,
            "provider": model.provider,
            "model": model.name,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "reasoning_tokens": reasoning,
            "cost_usd": c_in + c_cr + c_cw + c_out,
            "input_cost_usd": c_in,
            "cache_read_cost_usd": c_cr,
            "cache_write_cost_usd": c_cw,
            "output_cost_usd": c_out,
            "priced": model.priced,
            "price_source": "demo" if model.priced else "",
            "price_version": "demo-1" if model.priced else "",
            "request_id": f"req-{seed}-{i:08d}",
            "reservation_id": "",
            "latency_ms": int(200 + output_tokens * rng.uniform(8, 25) + input_tokens * 0.02),
            "status": status,
            "attributes": {"env": "demo"},
        }
        yield tuple(row[c] for c in RAW_COLUMNS)


def load(
    store: Store,
    n: int = 50_000,
    *,
    days: int = 30,
    end: datetime | None = None,
    seed: int = 7,
    batch: int = 10_000,
    extras: bool = True,
) -> int:
    """Insert ``generate_rows(...)`` into ``store``'s ``usage_raw``; return rows written.

    ``extras``: also insert ``generate_extras`` (budgets, alerts, anomalies, webhook
    deliveries) derived from the same rows.
    """
    end = (end or default_end()).astimezone(UTC)
    written = 0
    chunk: list[tuple] = []
    kept: list[tuple] = []
    for row in generate_rows(n, days=days, end=end, seed=seed):
        chunk.append(row)
        if extras:
            kept.append(row)
        if len(chunk) >= batch:
            written += store.insert_rows("usage_raw", chunk, RAW_COLUMNS)
            chunk = []
    written += store.insert_rows("usage_raw", chunk, RAW_COLUMNS)
    if extras:
        for table, (columns, rows) in generate_extras(kept, days=days, end=end, seed=seed).items():
            for i in range(0, len(rows), batch):
                store.insert_rows(table, rows[i : i + batch], columns)
    return written


# --- budgets, alerts, anomalies, webhook deliveries ----------------------------------------

BUDGET_COLUMNS = [c for c, _ in DECLARED_SCHEMA["budgets"]]
ALERT_COLUMNS = [c for c, _ in DECLARED_SCHEMA["alerts"] if c != "inserted_at"]
ANOMALY_COLUMNS = [c for c, _ in DECLARED_SCHEMA["anomalies"]]
DELIVERY_COLUMNS = [c for c, _ in DECLARED_SCHEMA["webhook_deliveries"]]


def _budget(**kw: Any) -> BudgetDefinition:
    return BudgetDefinition.model_validate(kw)


#: The demo budgets as finally defined (USD and token limits, every period kind,
#: hard and soft). Limits are sized on the demo usage so the current periods sit at
#: different levels of use and thresholds are crossed along the 30 days.
DEMO_BUDGETS: tuple[BudgetDefinition, ...] = (
    _budget(
        id="acme-monthly",
        name="Acme monthly",
        scope={"tenant": "acme"},
        period="month",
        limit_usd="180",
        emergency_threshold=98,
    ),
    _budget(
        id="globex-daily",
        name="Globex daily",
        scope={"tenant": "globex"},
        period="day",
        limit_usd="5",
    ),
    _budget(
        id="acme-platform-weekly",
        name="Acme platform team, weekly",
        scope={"tenant": "acme", "team": "platform"},
        period="week",
        limit_usd="30",
        mode="soft",
    ),
    _budget(
        id="code-review-7d",
        name="Code review, last 7 days",
        scope={"feature": "code-review"},
        period="rolling",
        rolling_days=7,
        limit_usd="40",
        mode="soft",
    ),
    _budget(
        id="acme-user00-tokens",
        name="acme-user00 daily tokens",
        scope={"tenant": "acme", "user": "acme-user00"},
        period="day",
        limit_tokens=3_000_000,
    ),
    _budget(
        id="gpt-4o-monthly",
        name="gpt-4o, all tenants",
        scope={"model": "gpt-4o"},
        period="month",
        limit_usd="150",
        thresholds=[80, 100],
    ),
    _budget(
        id="initech-tokens-30d",
        name="Initech tokens, last 30 days",
        scope={"tenant": "initech"},
        period="rolling",
        rolling_days=30,
        limit_tokens=60_000_000,
    ),
    _budget(
        id="umbrella-daily",
        name="Umbrella daily",
        scope={"tenant": "umbrella"},
        period="day",
        limit_usd="1",
    ),
)

#: An earlier version of a budget (its limit was raised after 10 days) and a budget
#: deleted after 20 days: (definition, days after the data start it was replaced).
_EARLIER_VERSIONS: tuple[tuple[BudgetDefinition, int], ...] = (
    (DEMO_BUDGETS[1].model_copy(update={"limit_usd": Decimal("4")}), 10),
)
_DELETED_BUDGET = (
    _budget(
        id="globex-growth-pilot",
        name="Globex growth pilot",
        scope={"tenant": "globex", "team": "growth"},
        period="day",
        limit_usd="0.5",
    ),
    20,
)

#: Alert rules of the demo: spend-rate level (USD per clock hour) per tenant, unpriced
#: calls per hour, webhook channels per alert kind.
SPEND_RATE_USD_PER_HOUR: dict[str, Decimal] = {"acme": Decimal("0.65"), "globex": Decimal("0.45")}
UNPRICED_CALLS_PER_HOUR = 2
DLQ_PER_MINUTE = 10
ANOMALY_WINDOW_S = 3600
CHANNELS: dict[str, tuple[str, ...]] = {
    "budget_threshold": ("finops-webhook",),
    "anomaly": ("ops-slack",),
    "spend_rate": ("ops-slack",),
    "unpriced_cost": ("finops-webhook",),
    "dlq_rate": ("ops-slack", "pager"),
}


@dataclass(frozen=True)
class _Use:
    ts: datetime
    event_id: str
    dims: dict[str, str]
    cost: Decimal
    tokens: int
    priced: bool


def _uses(rows: Iterable[Sequence[Any]]) -> list[_Use]:
    ix = {c: i for i, c in enumerate(RAW_COLUMNS)}
    dims = ("tenant", "team", "user", "feature", "api_key_id", "model")
    out = [
        _Use(
            ts=r[ix["ts"]],
            event_id=r[ix["event_id"]],
            dims={d: r[ix[d]] for d in dims},
            cost=r[ix["cost_usd"]],
            tokens=r[ix["input_tokens"]] + r[ix["output_tokens"]],
            priced=r[ix["priced"]],
        )
        for r in rows
    ]
    out.sort(key=lambda u: (u.ts, u.event_id))
    return out


def _budget_alerts(
    versions: Sequence[tuple[datetime, BudgetDefinition | None]], uses: Sequence[_Use]
) -> list[AlertEvent]:
    """Threshold crossings of one budget, as the ledger fires them: once per period."""
    final = next(d for _, d in reversed(versions) if d is not None)
    matching = [u for u in uses if all(u.dims.get(k) == v for k, v in final.scope.items())]
    times = [u.ts for u in matching]
    prefix = [Decimal(0)]
    for u in matching:
        prefix.append(prefix[-1] + (u.cost if final.unit == "usd" else Decimal(u.tokens)))
    fired: set[tuple[datetime, int]] = set()
    out: list[AlertEvent] = []
    for i, u in enumerate(matching):
        defn = None
        for since, d in versions:
            if since <= u.ts:
                defn = d
        if defn is None:
            continue
        start = budget_period_start(defn, u.ts)
        spent = prefix[i + 1] - prefix[bisect.bisect_left(times, start)]
        for threshold in defn.all_thresholds:
            if spent * 100 < defn.limit * threshold or (start, threshold) in fired:
                continue
            fired.add((start, threshold))
            emergency = threshold == defn.emergency_threshold
            scope = {str(k): v for k, v in defn.scope.items()}
            tenant = scope.pop("tenant", "")
            unit = "USD" if defn.unit == "usd" else "tokens"
            spent_q = spent.quantize(_NANO) if defn.unit == "usd" else spent
            out.append(
                AlertEvent(
                    alert_id=budget_alert_id(defn.id, start, threshold),
                    kind="budget_threshold",
                    tenant=tenant,
                    scope=scope,
                    severity="critical" if emergency or threshold >= 100 else "warning",
                    title=f"Budget {defn.name or defn.id} reached {threshold}% "
                    f"({spent_q} of {defn.limit} {unit})",
                    text=f"Budget {defn.id} ({defn.mode}) crossed {threshold}% of its limit in "
                    f"the period starting {start.isoformat()}: spent {spent_q} of "
                    f"{defn.limit} {unit} (event {u.event_id}).",
                    data={
                        "budget_id": defn.id,
                        "threshold": threshold,
                        "emergency": emergency,
                        "spent": str(spent_q),
                        "limit": str(defn.limit),
                        "unit": defn.unit,
                        "mode": defn.mode,
                        "period_start": start.isoformat(),
                        "event_id": u.event_id,
                    },
                    ts=u.ts,
                )
            )
    return out


def _hourly(uses: Sequence[_Use], key: Any, value: Any) -> dict[tuple[Any, datetime], Any]:
    out: dict[tuple[Any, datetime], Any] = {}
    for u in uses:
        k = key(u)
        if k is None:
            continue
        slot = (k, u.ts.replace(minute=0, second=0, microsecond=0))
        out[slot] = out.get(slot, 0) + value(u)
    return out


def _rate_alerts(uses: Sequence[_Use]) -> list[AlertEvent]:
    """Spend-rate alerts (cost per clock hour per tenant) and unpriced-model alerts."""
    out: list[AlertEvent] = []
    cost = _hourly(uses, lambda u: u.dims["tenant"], lambda u: u.cost)
    for (tenant, hour), usd in sorted(cost.items()):
        level = SPEND_RATE_USD_PER_HOUR.get(tenant)
        if level is None or usd < level:
            continue
        end = hour + timedelta(hours=1)
        out.append(
            AlertEvent.build(
                kind="spend_rate",
                tenant=tenant,
                severity="warning",
                title=f"Spend rate {usd.quantize(Decimal('0.01'))} USD/h for tenant={tenant} "
                f"(threshold {level} USD/h)",
                text=f"Cost over the hour ending {end.isoformat()} was {usd} USD, above the "
                f"{level} USD/h threshold.",
                data={
                    "value": str(usd),
                    "usd_per_hour": str(usd),
                    "threshold": str(level),
                    "window_end": end.isoformat(),
                },
                ts=end,
                key=(str(level), int(hour.timestamp())),
            )
        )
    unpriced = _hourly(
        uses, lambda u: None if u.priced else (u.dims["tenant"], u.dims["model"]), lambda u: 1
    )
    for ((tenant, model), hour), calls in sorted(unpriced.items()):
        if calls < UNPRICED_CALLS_PER_HOUR:
            continue
        out.append(
            AlertEvent.build(
                kind="unpriced_cost",
                tenant=tenant,
                scope={"model": model},
                severity="warning",
                title=f"{calls} calls to unpriced model {model!r} for {tenant}",
                text=f"{calls} calls in the hour starting {hour.isoformat()} used model "
                f"{model!r}, which has no price: their cost is unknown.",
                data={
                    "value": calls,
                    "calls": calls,
                    "threshold": str(UNPRICED_CALLS_PER_HOUR),
                    "model": model,
                    "window_start": hour.isoformat(),
                },
                ts=hour + timedelta(hours=1),
                key=(str(UNPRICED_CALLS_PER_HOUR), int(hour.timestamp())),
            )
        )
    return out


def _anomalies(
    rng: random.Random, uses: Sequence[_Use], start: datetime, days: int
) -> list[Anomaly]:
    """A few synthetic anomalies a day on busy scopes, sized on the scope's hourly usage.

    Hourly windows (``ANOMALY_WINDOW_S``; the detector's window is configurable) keep
    the demo's values and baselines readable on this small data set.
    """
    per_window: dict[tuple[tuple[str, str], ...], list[Decimal]] = {}
    scopes: list[dict[str, str]] = []
    for tenant in ("acme", "globex", "initech"):
        scopes.append({"tenant": tenant})
        scopes.append({"tenant": tenant, "feature": "chat"})
        scopes.append({"tenant": tenant, "model": "claude-sonnet-4"})
    windows = Decimal(days * 86_400 // ANOMALY_WINDOW_S)
    for scope in scopes:
        key = tuple(sorted(scope.items()))
        mine = [u for u in uses if all(u.dims[k] == v for k, v in scope.items())]
        per_window[key] = [
            sum((u.cost for u in mine), Decimal(0)) / windows,
            Decimal(sum(u.tokens for u in mine)) / windows,
            Decimal(len(mine)) / windows,
        ]
    out: list[Anomaly] = []
    for day in range(days):
        for _ in range(rng.choice((1, 2, 2, 3, 4))):
            scope = rng.choice(scopes)
            m = rng.choice((0, 0, 1, 2))
            metric = ("cost_usd", "tokens", "calls")[m]
            base = per_window[tuple(sorted(scope.items()))][m]
            ratio = round(rng.uniform(3.0, 14.0), 2)
            window_start = start + timedelta(days=day, hours=rng.randint(6, 21))
            window_start = window_start.replace(minute=0, second=0, microsecond=0)
            places = _NANO if metric == "cost_usd" else Decimal(1)
            baseline = base.quantize(_NANO)
            value = max(base * Decimal(ratio), Decimal(1) if metric == "calls" else _NANO)
            value = value.quantize(places)
            out.append(
                Anomaly(
                    anomaly_id=Anomaly.make_id(scope, metric, window_start),
                    scope=scope,
                    metric=metric,  # type: ignore[arg-type]
                    window_start=window_start,
                    window_s=ANOMALY_WINDOW_S,
                    value=value,
                    baseline=baseline,
                    score=round(rng.uniform(4.0, 6.0) + ratio * rng.uniform(0.8, 1.6), 2),
                    ratio=float(value / baseline) if baseline else ratio,
                    detected_at=window_start
                    + timedelta(seconds=ANOMALY_WINDOW_S + rng.randint(2, 40)),
                )
            )
    return out


def _dlq_alerts(rng: random.Random, start: datetime, days: int) -> list[AlertEvent]:
    """Synthetic bursts of rejected events (a producer sending bad events for a while)."""
    out: list[AlertEvent] = []
    for day in range(days):
        if rng.random() >= 0.6:
            continue
        minute0 = start + timedelta(days=day, minutes=int(rng.uniform(8, 20) * 60))
        for k in range(rng.randint(1, 5)):
            minute = minute0 + timedelta(minutes=int(35 * k + rng.uniform(0, 10)))
            count = rng.randint(DLQ_PER_MINUTE, 300)
            out.append(
                AlertEvent.build(
                    kind="dlq_rate",
                    tenant="",
                    scope={"source_topic": "usage.events"},
                    severity="critical",
                    title=f"{count} events dead-lettered in one minute "
                    f"(threshold {DLQ_PER_MINUTE})",
                    text=f"{count} events went to the DLQ in the minute starting "
                    f"{minute.isoformat()}: producers may be sending invalid events.",
                    data={
                        "value": count,
                        "per_minute": count,
                        "threshold": str(DLQ_PER_MINUTE),
                        "minute_start": minute.isoformat(),
                    },
                    ts=minute + timedelta(minutes=1),
                    key=(str(DLQ_PER_MINUTE), int(minute.timestamp())),
                )
            )
    return out


def _deliveries(seed: int, alerts: Sequence[AlertEvent]) -> list[WebhookDelivery]:
    """Every attempt of every alert to its channels: retries, timeouts, dead letters.

    One random stream per alert kind, so the outcomes of an alert kind whose alerts
    do not depend on the usage rows' dates (dlq_rate, anomaly) are the same for any
    ``end``: the pager's dead letters always show in the last 7 days.
    """
    out: list[WebhookDelivery] = []
    rngs: dict[str, random.Random] = {}
    for alert in sorted(alerts, key=lambda a: (a.ts, a.alert_id)):
        rng = rngs.setdefault(alert.kind, random.Random(f"deliveries-{alert.kind}-{seed}"))
        for channel in CHANNELS[alert.kind]:
            ts = alert.ts + timedelta(seconds=rng.uniform(0.2, 3.0))
            for attempt in range(1, 6):
                roll = rng.random()
                status: Any = "ok"
                http: int | None = 200
                error = ""
                latency = int(rng.lognormvariate(math.log(140), 0.5))
                if channel == "pager" and roll < 0.3:
                    status, http, error = "dead", 410, "HTTP 410 Gone (not retried)"
                elif roll < 0.02:
                    status, http, error = "dead", 404, "HTTP 404 Not Found (not retried)"
                elif roll < 0.07:
                    status, http, error, latency = "failed", None, "timeout after 5s", 5000
                elif roll < 0.13:
                    status, http, error = "failed", 503, "HTTP 503 Service Unavailable"
                if status == "failed" and attempt == 5:
                    status, error = "dead", f"{error}; attempts exhausted"
                out.append(
                    WebhookDelivery(
                        delivery_id=stable_id("delivery", alert.alert_id, channel, attempt),
                        alert_id=alert.alert_id,
                        channel=channel,
                        attempt=attempt,
                        status=status,
                        http_status=http,
                        error=error,
                        latency_ms=latency,
                        ts=ts,
                    )
                )
                if status != "failed":
                    break
                ts += timedelta(seconds=2**attempt + latency / 1000)
    return out


def generate_extras(
    rows: Iterable[Sequence[Any]],
    *,
    days: int = 30,
    end: datetime | None = None,
    seed: int = 7,
) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Rows of ``budgets``, ``alerts``, ``anomalies`` and ``webhook_deliveries`` for ``rows``.

    ``rows`` are ``generate_rows(..., days, end, seed)``; returns table -> (columns,
    rows). Deterministic for equal arguments.
    """
    end = (end or default_end()).astimezone(UTC)
    start = end - timedelta(days=days)
    defined = start - timedelta(days=1)
    rng = random.Random(f"extras-{seed}")
    uses = _uses(rows)

    budget_rows: list[tuple[Any, ...]] = []
    alerts: list[AlertEvent] = []
    earlier = {d.id: (d, after) for d, after in _EARLIER_VERSIONS}
    version_base = int(defined.timestamp()) * 1_000_000
    for defn in DEMO_BUDGETS:
        versions: list[tuple[datetime, BudgetDefinition | None]] = [(defined, defn)]
        budget_rows.append(budget_row(defn.id, defn, version_base, defined))
        if defn.id in earlier:
            first, after = earlier[defn.id]
            changed = start + timedelta(days=after)
            versions = [(defined, first), (changed, defn)]
            budget_rows[-1] = budget_row(first.id, first, version_base, defined)
            budget_rows.append(budget_row(defn.id, defn, version_base + 1, changed))
        alerts += _budget_alerts(versions, uses)
    gone, after = _DELETED_BUDGET
    deleted_at = start + timedelta(days=after)
    budget_rows.append(budget_row(gone.id, gone, version_base, defined))
    budget_rows.append(budget_row(gone.id, None, version_base + 1, deleted_at))
    alerts += _budget_alerts([(defined, gone), (deleted_at, None)], uses)

    alerts += _rate_alerts(uses)
    anomalies = _anomalies(rng, uses, start, days)
    severity: dict[bool, Severity] = {True: "critical", False: "warning"}
    alerts += [a.to_alert(severity[a.ratio >= 8]) for a in anomalies]
    alerts += _dlq_alerts(rng, start, days)
    alerts = [a for a in alerts if a.ts < end]
    alerts.sort(key=lambda a: (a.ts, a.alert_id))
    deliveries = [d for d in _deliveries(seed, alerts) if d.ts < end]

    return {
        "budgets": (BUDGET_COLUMNS, budget_rows),
        "alerts": (ALERT_COLUMNS, [alert_row(a) for a in alerts]),
        "anomalies": (
            ANOMALY_COLUMNS,
            [anomaly_row(a) for a in anomalies if a.detected_at < end],
        ),
        "webhook_deliveries": (
            DELIVERY_COLUMNS,
            [
                (
                    d.delivery_id,
                    d.alert_id,
                    d.channel,
                    d.attempt,
                    d.status,
                    d.http_status,
                    d.error,
                    d.latency_ms,
                    d.ts,
                )
                for d in deliveries
            ],
        ),
    }
