"""Models: tokens and cost per model, prompt caching and reasoning.

Cache savings (documented in docs/dashboards.md). Per-part costs are stored per
row: ``input_cost_usd`` prices only the *uncached* input tokens
(``input_tokens - cache_read_tokens - cache_write_tokens``). For each model over
the time range:

* uncached price per token ``p = sum(input_cost_usd) / sum(uncached input tokens)``
* gross savings ``= sum(cache_read_tokens) * p - sum(cache_read_cost_usd)``: what the
  cached reads would have cost at the uncached price, minus what they cost;
* write premium ``= sum(cache_write_cost_usd) - sum(cache_write_tokens) * p``: the
  extra paid to write the cache (Anthropic bills writes above the base price);
* net savings ``= gross savings - write premium``.

A model with no uncached input in the range has no observable ``p``; its savings
are reported as 0 rather than guessed.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as models

from dashboards import panels as p

UID = "tokenpipe-models"

_WHERE = f"$__timeFilter(bucket) AND {p.FILTERS}"

#: Per-model sums over the range, with the uncached price per token (0 when unknown).
_PER_MODEL = f"""
SELECT
    model,
    any(provider) AS provider,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    toFloat64(sum(cost_usd)) AS cost_usd,
    toFloat64(sum(input_cost_usd)) AS input_cost_usd,
    toFloat64(sum(cache_read_cost_usd)) AS cache_read_cost_usd,
    toFloat64(sum(cache_write_cost_usd)) AS cache_write_cost_usd,
    input_tokens - cache_read_tokens - cache_write_tokens AS uncached_input_tokens,
    if(uncached_input_tokens > 0, input_cost_usd / uncached_input_tokens, 0)
        AS uncached_usd_per_token
FROM usage_rollup_1h
WHERE {_WHERE}
GROUP BY model
""".strip()

_SAVINGS = (
    "cache_read_tokens * uncached_usd_per_token - cache_read_cost_usd",
    "cache_write_cost_usd - cache_write_tokens * uncached_usd_per_token",
)


def build() -> models.Dashboard:
    grid = p.Grid()
    d = p.dashboard(
        UID,
        "tokenpipe / Models",
        "Tokens and cost per model, cache-hit share, cache savings and reasoning share.",
    )
    gross, premium = _SAVINGS
    d = d.with_panel(
        p.gauge_panel(
            grid,
            "Cache-hit share",
            "SELECT sum(cache_read_tokens) / greatest(sum(input_tokens), 1) AS cache_hit_share"
            f" FROM usage_rollup_1h WHERE {_WHERE}",
            unit=p.UNIT_SHARE,
            steps=((None, "red"), (0.2, "orange"), (0.5, "green")),
            description="Input tokens read from the prompt cache, as a share of all input tokens.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Net cache savings",
            f"SELECT sum({gross}) - sum({premium}) AS net_savings_usd FROM ({_PER_MODEL})",
            unit=p.UNIT_USD,
            decimals=2,
            h=6,
            steps=((None, "red"), (0.0, "green")),
            description="What cached reads would have cost uncached, minus their cost and the"
            " cache-write premium (formula in docs/dashboards.md).",
        )
    )
    d = d.with_panel(
        p.gauge_panel(
            grid,
            "Reasoning share",
            "SELECT sum(reasoning_tokens) / greatest(sum(output_tokens), 1) AS reasoning_share"
            f" FROM usage_rollup_1h WHERE {_WHERE}",
            unit=p.UNIT_SHARE,
            steps=((None, "green"), (0.5, "orange"), (0.8, "red")),
            description="Reasoning tokens as a share of output tokens (they are billed as output).",
        )
    )
    d = d.with_panel(
        p.barchart_panel(
            grid,
            "Cost per model",
            "SELECT model, toFloat64(sum(cost_usd)) AS cost_usd"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY model ORDER BY cost_usd DESC",
            unit=p.UNIT_USD,
            x_field="model",
            w=12,
            h=6,
            description="Total cost per model in the time range.",
        )
    )
    grid.newline()
    d = d.with_panel(
        p.barchart_panel(
            grid,
            "Tokens per model",
            "SELECT model, sum(input_tokens) AS input, sum(output_tokens) AS output"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY model"
            " ORDER BY input + output DESC",
            unit=p.UNIT_COUNT,
            x_field="model",
            stacked=True,
            description="Input and output tokens per model.",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Cache-hit share by model",
            "SELECT $__timeInterval(bucket) AS time, model,"
            " sum(cache_read_tokens) / greatest(sum(input_tokens), 1) AS cache_hit_share"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY time, model ORDER BY time, model",
            unit=p.UNIT_SHARE,
            series_label="model",
            description="Share of input tokens read from cache, per model and time bucket.",
        )
    )
    columns = [
        "model",
        "provider",
        "calls",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "cost_per_1k_tokens_usd",
        "cache_hit_share",
        "reasoning_share",
    ]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Per model",
            "SELECT model, provider, calls, input_tokens, output_tokens, cost_usd,"
            " cost_usd * 1000 / greatest(input_tokens + output_tokens, 1)"
            " AS cost_per_1k_tokens_usd,"
            " cache_read_tokens / greatest(input_tokens, 1) AS cache_hit_share,"
            " reasoning_tokens / greatest(output_tokens, 1) AS reasoning_share"
            f" FROM ({_PER_MODEL}) ORDER BY cost_usd DESC",
            columns=columns,
            sort_by="cost_usd",
            description="Calls, tokens and cost per model; cost per 1k tokens blends input"
            " and output.",
        )
    )
    savings_cols = [
        "model",
        "cache_read_tokens",
        "cache_write_tokens",
        "uncached_price_per_1m_usd",
        "cache_read_cost_usd",
        "gross_savings_usd",
        "write_premium_usd",
        "net_savings_usd",
    ]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Cache savings per model",
            "SELECT model, cache_read_tokens, cache_write_tokens,"
            " uncached_usd_per_token * 1e6 AS uncached_price_per_1m_usd, cache_read_cost_usd,"
            f" {gross} AS gross_savings_usd, {premium} AS write_premium_usd,"
            " gross_savings_usd - write_premium_usd AS net_savings_usd"
            f" FROM ({_PER_MODEL}) WHERE cache_read_tokens + cache_write_tokens > 0"
            " ORDER BY net_savings_usd DESC",
            columns=savings_cols,
            sort_by="net_savings_usd",
            description="Savings = cache reads priced at the uncached input price, minus their"
            " actual cost, minus the cache-write premium (docs/dashboards.md).",
        )
    )
    return d.build()
