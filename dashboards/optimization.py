"""Optimization: where tokens and money could be saved.

Heuristics (thresholds are constants below; docs/dashboards.md explains them):

* High-token requests — the largest single calls (usage_raw: per-request detail).
* Prompt much larger than completion — (feature, model) pairs whose input/output
  token ratio is at least ``PROMPT_RATIO_MIN``: candidates for trimming context or
  retrieval.
* Model-downgrade candidates — (feature, model) pairs with short outputs (average
  below ``SHORT_OUTPUT_TOKENS``) on a model whose blended price per token is at
  least ``DOWNGRADE_PRICE_FACTOR`` times that of the cheapest model of the same
  provider in use. Estimated saving: the pair's cost minus its tokens priced at the
  cheapest model's blended rate (a rough upper bound: output/input mix differs).
* Repeated-prompt caching opportunities — we do not store prompt text or hashes,
  so the proxy is: features with large average inputs (at least
  ``LARGE_INPUT_TOKENS``) and a low cache-read share (below ``LOW_CACHE_SHARE``).
  Large, repeatedly sent prompts (system prompts, documents, tool schemas) are what
  prompt caching serves; a feature sending them uncached is worth a look.
  "Uncached input cost" is the money at stake.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as models

from dashboards import panels as p

UID = "tokenpipe-optimization"

PROMPT_RATIO_MIN = 20
SHORT_OUTPUT_TOKENS = 300
DOWNGRADE_PRICE_FACTOR = 3
LARGE_INPUT_TOKENS = 2000
LOW_CACHE_SHARE = 0.2

_WHERE = f"$__timeFilter(bucket) AND {p.FILTERS}"


def build() -> models.Dashboard:
    grid = p.Grid()
    d = p.dashboard(
        UID,
        "tokenpipe / Optimization",
        "High-token requests, oversized prompts, model-downgrade candidates and caching"
        " opportunities.",
    )
    d = d.with_panel(
        p.barchart_panel(
            grid,
            "Input/output ratio by feature",
            "SELECT feature, sum(input_tokens) / greatest(sum(output_tokens), 1) AS io_ratio"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY feature ORDER BY io_ratio DESC",
            unit=p.UNIT_RATIO,
            x_field="feature",
            w=12,
            h=8,
            description="Input tokens per output token, per feature.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Uncached input cost (caching candidates)",
            "SELECT sum(input_cost_usd) AS uncached_input_usd FROM ("
            "SELECT feature, toFloat64(sum(input_cost_usd)) AS input_cost_usd,"
            " sum(input_tokens) / greatest(sum(calls), 1) AS avg_input,"
            " sum(cache_read_tokens) / greatest(sum(input_tokens), 1) AS cache_share"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY feature"
            f" HAVING avg_input >= {LARGE_INPUT_TOKENS} AND cache_share < {LOW_CACHE_SHARE})",
            unit=p.UNIT_USD,
            decimals=2,
            w=6,
            h=8,
            description="Uncached input cost of the features listed under caching opportunities.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Downgrade savings (estimate)",
            f"SELECT sum(est_savings_usd) AS est_savings_usd FROM ({_downgrade_sql()})",
            unit=p.UNIT_USD,
            decimals=2,
            w=6,
            h=8,
            description="Sum of the estimated savings of the model-downgrade candidates.",
        )
    )
    top_cols = [
        "ts",
        "tenant",
        "user",
        "feature",
        "model",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "latency_ms",
    ]
    d = d.with_panel(
        p.table_panel(
            grid,
            "High-token requests",
            "SELECT ts, tenant, user, feature, model, input_tokens, output_tokens,"
            " cache_read_tokens, toFloat64(cost_usd) AS cost_usd, latency_ms"
            f" FROM usage_raw WHERE $__timeFilter(ts) AND {p.FILTERS}"
            " ORDER BY input_tokens + output_tokens DESC LIMIT 50",
            columns=top_cols,
            w=24,
            h=10,
            description="The 50 calls with the most tokens (input + output), from raw events.",
        )
    )
    ratio_cols = [
        "feature",
        "model",
        "calls",
        "avg_input_tokens",
        "avg_output_tokens",
        "io_ratio",
        "input_cost_usd",
    ]
    d = d.with_panel(
        p.table_panel(
            grid,
            f"Prompt much larger than completion (ratio >= {PROMPT_RATIO_MIN})",
            "SELECT feature, model, sum(calls) AS calls,"
            " sum(input_tokens) / greatest(calls, 1) AS avg_input_tokens,"
            " sum(output_tokens) / greatest(calls, 1) AS avg_output_tokens,"
            " sum(input_tokens) / greatest(sum(output_tokens), 1) AS io_ratio,"
            " toFloat64(sum(input_cost_usd) + sum(cache_read_cost_usd)"
            " + sum(cache_write_cost_usd)) AS input_cost_usd"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY feature, model"
            f" HAVING io_ratio >= {PROMPT_RATIO_MIN} ORDER BY input_cost_usd DESC LIMIT 50",
            columns=ratio_cols,
            sort_by="input_cost_usd",
            w=12,
            description="Feature/model pairs sending many input tokens per output token:"
            " candidates for trimming context.",
        )
    )
    down_cols = [
        "feature",
        "model",
        "cheapest_model",
        "calls",
        "avg_output_tokens",
        "price_ratio",
        "cost_usd",
        "est_savings_usd",
    ]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Model-downgrade candidates",
            f"SELECT {', '.join(down_cols)} FROM ({_downgrade_sql()})"
            " ORDER BY est_savings_usd DESC",
            columns=down_cols,
            sort_by="est_savings_usd",
            w=12,
            description=f"Short outputs (< {SHORT_OUTPUT_TOKENS} tokens on average) on a model"
            f" >= {DOWNGRADE_PRICE_FACTOR}x the per-token price of the provider's cheapest model.",
        )
    )
    cache_cols = [
        "feature",
        "calls",
        "avg_input_tokens",
        "cache_hit_share",
        "uncached_input_usd",
    ]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Caching opportunities",
            "SELECT feature, sum(calls) AS calls,"
            " sum(input_tokens) / greatest(calls, 1) AS avg_input_tokens,"
            " sum(cache_read_tokens) / greatest(sum(input_tokens), 1) AS cache_hit_share,"
            " toFloat64(sum(input_cost_usd)) AS uncached_input_usd"
            f" FROM usage_rollup_1h WHERE {_WHERE} GROUP BY feature"
            f" HAVING avg_input_tokens >= {LARGE_INPUT_TOKENS}"
            f" AND cache_hit_share < {LOW_CACHE_SHARE} ORDER BY uncached_input_usd DESC",
            columns=cache_cols,
            sort_by="uncached_input_usd",
            w=24,
            h=8,
            description=f"Features with large prompts (>= {LARGE_INPUT_TOKENS} input tokens per"
            f" call) and a cache-hit share below {LOW_CACHE_SHARE:.0%}: proxy for repeated"
            " prompts that prompt caching would serve.",
        )
    )
    return d.build()


def _downgrade_sql() -> str:
    """(feature, model) pairs that look over-provisioned, with an estimated saving."""
    return f"""
WITH rates AS (
    SELECT provider, model,
        toFloat64(sum(cost_usd)) / greatest(sum(input_tokens) + sum(output_tokens), 1)
            AS usd_per_token
    FROM usage_rollup_1h
    WHERE $__timeFilter(bucket) AND priced_calls > 0
    GROUP BY provider, model
),
cheapest AS (
    SELECT provider, argMin(model, usd_per_token) AS cheapest_model,
        min(usd_per_token) AS cheapest_usd_per_token
    FROM rates WHERE usd_per_token > 0 GROUP BY provider
)
SELECT u.feature AS feature, u.model AS model, c.cheapest_model AS cheapest_model,
    u.calls AS calls, u.avg_output_tokens AS avg_output_tokens,
    r.usd_per_token / c.cheapest_usd_per_token AS price_ratio,
    u.cost_usd AS cost_usd,
    u.cost_usd - u.tokens * c.cheapest_usd_per_token AS est_savings_usd
FROM (
    SELECT feature, provider, model, sum(calls) AS calls,
        sum(output_tokens) / greatest(calls, 1) AS avg_output_tokens,
        sum(input_tokens) + sum(output_tokens) AS tokens,
        toFloat64(sum(cost_usd)) AS cost_usd
    FROM usage_rollup_1h
    WHERE {_WHERE}
    GROUP BY feature, provider, model
) AS u
INNER JOIN rates AS r ON r.provider = u.provider AND r.model = u.model
INNER JOIN cheapest AS c ON c.provider = u.provider
WHERE u.avg_output_tokens < {SHORT_OUTPUT_TOKENS}
    AND r.usd_per_token >= {DOWNGRADE_PRICE_FACTOR} * c.cheapest_usd_per_token
    AND u.model != c.cheapest_model
""".strip()
