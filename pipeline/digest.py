"""The daily digest: one UTC day's spend, top spenders, alerts and advice.

``build_digest(store, day, tenant)`` reads the day rollup (``usage_rollup_1d``:
one row per dimension combination per day, kept forever, so a digest of any past
day is cheap and exact) plus anomalies and budgets when their tables exist (see
``pipeline.api.optional_sections``). It renders as HTML (``render_html``), as a
Slack message (``slack_payload``: ``text`` + Block Kit ``blocks``) or as plain
JSON for a generic webhook (``Digest.as_json``).

Recommendations are rules of thumb with their numbers attached, never applied
automatically (thresholds in ``Thresholds``):

* **prompt caching**: a feature with large prompts (mean input ≥
  ``cache_min_input``) that reads almost nothing from cache (cache reads <
  ``cache_max_share`` of input) pays full price for the same prefix again and again;
* **model downgrade**: an expensive model (mean cost per call ≥
  ``downgrade_min_cost_per_call``) that writes short answers (mean output <
  ``downgrade_max_output``) is a candidate for a cheaper model;
* **unpriced model**: calls the catalog could not price (cost counted as 0) need a
  price override.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline.api import optional_sections

TOP_N = 5


@dataclass(frozen=True)
class Thresholds:
    min_calls: int = 20
    cache_min_input: int = 2000
    cache_max_share: float = 0.10
    downgrade_min_cost_per_call: Decimal = Decimal("0.01")
    downgrade_max_output: int = 300


@dataclass
class Recommendation:
    kind: str  # prompt_caching | model_downgrade | unpriced_model
    target: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Digest:
    day: date
    tenant: str | None
    total_cost_usd: Decimal
    calls: int
    tokens: int
    by_feature: list[dict[str, Any]]
    by_user: list[dict[str, Any]]
    by_model: list[dict[str, Any]]
    anomalies: list[dict[str, Any]]
    budgets: list[dict[str, Any]]
    recommendations: list[Recommendation]

    def as_json(self) -> dict[str, Any]:
        """The generic-webhook payload (money as exact decimal strings)."""

        def enc(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                {k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in r.items()}
                for r in rows
            ]

        return {
            "type": "tokenpipe.daily_digest",
            "day": self.day.isoformat(),
            "tenant": self.tenant,
            "total_cost_usd": format(self.total_cost_usd, "f"),
            "calls": self.calls,
            "tokens": self.tokens,
            "top": {
                "feature": enc(self.by_feature),
                "user": enc(self.by_user),
                "model": enc(self.by_model),
            },
            "anomalies": self.anomalies,
            "budgets": self.budgets,
            "recommendations": [
                {"kind": r.kind, "target": r.target, "text": r.text, "data": r.data}
                for r in self.recommendations
            ],
        }


_SUMS = (
    "sum(calls) AS calls, sum(unpriced_calls) AS unpriced_calls,"
    " sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,"
    " sum(cache_read_tokens) AS cache_read_tokens, sum(cost_usd) AS cost_usd"
)


def _grouped(store: Any, dim: str, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows = store.query_dicts(
        f"SELECT {dim} AS key, {_SUMS} FROM usage_rollup_1d WHERE {where}"
        " GROUP BY key ORDER BY cost_usd DESC, key",
        params,
    )
    return [
        {
            "key": r["key"],
            "calls": int(r["calls"]),
            "unpriced_calls": int(r["unpriced_calls"]),
            "input_tokens": int(r["input_tokens"]),
            "output_tokens": int(r["output_tokens"]),
            "cache_read_tokens": int(r["cache_read_tokens"]),
            "cost_usd": Decimal(r["cost_usd"]),
        }
        for r in rows
    ]


def recommend(
    features: list[dict[str, Any]], models: list[dict[str, Any]], t: Thresholds
) -> list[Recommendation]:
    """Rules of thumb over per-feature and per-model day totals (all groups, not just the top)."""
    out: list[Recommendation] = []
    for f in features:
        if f["calls"] < t.min_calls or not f["input_tokens"]:
            continue
        mean_input = f["input_tokens"] / f["calls"]
        share = f["cache_read_tokens"] / f["input_tokens"]
        if mean_input >= t.cache_min_input and share < t.cache_max_share:
            out.append(
                Recommendation(
                    "prompt_caching",
                    f["key"],
                    f"Feature '{f['key']}' sends {mean_input:,.0f} input tokens per call on "
                    f"average but only {share:.0%} come from cache: enable prompt caching "
                    "(stable prefix first).",
                    {"mean_input_tokens": round(mean_input), "cache_read_share": round(share, 4)},
                )
            )
    for m in models:
        if m["calls"] < t.min_calls:
            continue
        per_call = m["cost_usd"] / m["calls"]
        mean_output = m["output_tokens"] / m["calls"]
        if per_call >= t.downgrade_min_cost_per_call and mean_output < t.downgrade_max_output:
            out.append(
                Recommendation(
                    "model_downgrade",
                    m["key"],
                    f"Model '{m['key']}' costs ${per_call:.4f} per call for {mean_output:,.0f} "
                    "output tokens on average: a cheaper model may do for these short answers.",
                    {
                        "cost_per_call_usd": format(per_call, "f"),
                        "mean_output_tokens": round(mean_output),
                    },
                )
            )
    for m in models:
        if m["unpriced_calls"]:
            out.append(
                Recommendation(
                    "unpriced_model",
                    m["key"],
                    f"{m['unpriced_calls']:,} calls to '{m['key']}' have no price: add a price "
                    "override so their cost is counted.",
                    {"unpriced_calls": m["unpriced_calls"]},
                )
            )
    return out


def build_digest(
    store: Any, day: date, tenant: str | None = None, thresholds: Thresholds | None = None
) -> Digest:
    """The digest of UTC ``day`` (blocking), for one tenant or all."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    where = "bucket >= {start:DateTime64(3, 'UTC')} AND bucket < {end:DateTime64(3, 'UTC')}"
    params: dict[str, Any] = {"start": start, "end": end}
    if tenant:
        where += " AND tenant = {tenant:String}"
        params["tenant"] = tenant
    features = _grouped(store, "feature", where, params)
    users = _grouped(store, "user", where, params)
    models = _grouped(store, "model", where, params)
    sections, _ = optional_sections(store, tenant or None, start, end)
    return Digest(
        day=day,
        tenant=tenant,
        total_cost_usd=sum((m["cost_usd"] for m in models), Decimal(0)),
        calls=sum(m["calls"] for m in models),
        tokens=sum(m["input_tokens"] + m["output_tokens"] for m in models),
        by_feature=features[:TOP_N],
        by_user=users[:TOP_N],
        by_model=models[:TOP_N],
        anomalies=sections["anomalies"],
        budgets=sections["budgets"],
        recommendations=recommend(features, models, thresholds or Thresholds()),
    )


def _money(v: Decimal) -> str:
    return f"${v:,.2f}" if v >= 1 else f"${v:,.4f}"


def _title(d: Digest) -> str:
    who = f" — {d.tenant}" if d.tenant else ""
    return f"tokenpipe daily digest {d.day.isoformat()}{who}"


def render_html(d: Digest) -> str:
    """A self-contained HTML page (every value escaped)."""
    e = html.escape

    def table(label: str, rows: list[dict[str, Any]]) -> str:
        if not rows:
            return f"<h2>Top {e(label)}</h2><p>No usage.</p>"
        body = "".join(
            f"<tr><td>{e(str(r['key']) or '—')}</td><td>{r['calls']:,}</td>"
            f"<td>{r['input_tokens'] + r['output_tokens']:,}</td>"
            f"<td>{e(_money(r['cost_usd']))}</td></tr>"
            for r in rows
        )
        return (
            f"<h2>Top {e(label)}</h2><table><tr><th>{e(label)}</th><th>calls</th>"
            f"<th>tokens</th><th>cost</th></tr>{body}</table>"
        )

    def items(label: str, rows: list[dict[str, Any]]) -> str:
        if not rows:
            return ""
        lis = "".join(
            "<li>" + e(", ".join(f"{k}={v}" for k, v in r.items())) + "</li>" for r in rows
        )
        return f"<h2>{e(label)}</h2><ul>{lis}</ul>"

    recs = "".join(f"<li><b>{e(r.kind)}</b>: {e(r.text)}</li>" for r in d.recommendations)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{e(_title(d))}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>"
        f"<h1>{e(_title(d))}</h1>"
        f"<p>Spend <b>{e(_money(d.total_cost_usd))}</b> over {d.calls:,} calls "
        f"and {d.tokens:,} tokens.</p>"
        + table("features", d.by_feature)
        + table("users", d.by_user)
        + table("models", d.by_model)
        + items("Anomalies", d.anomalies)
        + items("Budgets", d.budgets)
        + (f"<h2>Recommendations</h2><ul>{recs}</ul>" if recs else "")
        + "</body></html>"
    )


def slack_payload(d: Digest) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` fallback plus Block Kit ``blocks``."""

    def top(label: str, rows: list[dict[str, Any]]) -> str:
        lines = [
            f"• {r['key'] or '—'}: {_money(r['cost_usd'])} ({r['calls']:,} calls)" for r in rows
        ]
        return f"*Top {label}*\n" + ("\n".join(lines) if lines else "no usage")

    summary = f"Spend {_money(d.total_cost_usd)} over {d.calls:,} calls and {d.tokens:,} tokens."
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _title(d)[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": summary}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": top("features", d.by_feature)},
                {"type": "mrkdwn", "text": top("users", d.by_user)},
                {"type": "mrkdwn", "text": top("models", d.by_model)},
            ],
        },
    ]
    if d.anomalies:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*Anomalies*: {len(d.anomalies)}"},
            }
        )
    if d.recommendations:
        text = "*Recommendations*\n" + "\n".join(f"• {r.text}" for r in d.recommendations)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    return {"text": f"{_title(d)}: {summary}", "blocks": blocks}
