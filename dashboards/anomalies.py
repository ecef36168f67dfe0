"""Anomalies and alerts: detected anomalies, every alert by kind, webhook delivery health.

Reads the ``anomalies``, ``alerts`` and ``webhook_deliveries`` tables the worker
writes (``schemas/clickhouse/0003_budgets_alerts.sql``). The dashboard variables
select what applies to the selection (``budgets.scope_filters``): an anomaly or
alert is shown when each of its scope dimensions that has a variable is among the
selected values; system-wide alerts (tenant '', e.g. ``dlq_rate``) are always
shown. Webhook deliveries follow the alert they deliver.

The DLQ rate itself is a Prometheus counter, ``tokenpipe_events_rejected_total``
(label ``reason``) on the worker's ``/metrics``; ClickHouse has no DLQ table. What
is here are the ``dlq_rate`` alerts: minutes whose rejected events reached the
rule's threshold, with the count of that minute.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as models

from dashboards import panels as p
from dashboards.budgets import scope_filters

UID = "tokenpipe-anomalies"

UNIT_MS = "ms"

_ANOMALIES_WHERE = f"$__timeFilter(window_start) AND {scope_filters('scope')}"
_ALERT_FILTER = scope_filters("scope", tenant="tenant")
_ALERTS_WHERE = f"$__timeFilter(ts) AND {_ALERT_FILTER}"
_DELIVERIES_WHERE = (
    f"$__timeFilter(ts) AND alert_id IN (SELECT alert_id FROM alerts WHERE {_ALERT_FILTER})"
)
#: Scope dimensions other than the tenant, as ``k=v, ...`` text.
_SCOPE_REST = (
    "arrayStringConcat(arrayFilter(x -> NOT startsWith(x, 'tenant='),"
    " arrayMap((k, v) -> concat(k, '=', v), mapKeys(scope), mapValues(scope))), ', ')"
)


def build() -> models.Dashboard:
    grid = p.Grid()
    d = p.dashboard(
        UID,
        "tokenpipe / Anomalies and alerts",
        "Anomalies (value, baseline, ratio, score), alerts by kind, webhook delivery attempts,"
        " failures, dead letters and latency, and DLQ-rate alerts.",
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Anomalies",
            f"SELECT count() AS anomalies FROM anomalies FINAL WHERE {_ANOMALIES_WHERE}",
            unit=p.UNIT_COUNT,
            description="Anomalous windows detected in the time range.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Alerts",
            f"SELECT count() AS alerts FROM alerts FINAL WHERE {_ALERTS_WHERE}",
            unit=p.UNIT_COUNT,
            description="Alerts of every kind in the time range.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Critical alerts",
            "SELECT count() AS critical_alerts FROM alerts FINAL"
            f" WHERE {_ALERTS_WHERE} AND severity = 'critical'",
            unit=p.UNIT_COUNT,
            steps=((None, "green"), (1, "red")),
            description="Alerts with severity critical in the time range.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Webhook attempts",
            f"SELECT count() AS attempts FROM webhook_deliveries WHERE {_DELIVERIES_WHERE}",
            unit=p.UNIT_COUNT,
            description="Delivery attempts to every channel (retries included).",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Failed attempts",
            "SELECT countIf(status != 'ok') / greatest(count(), 1) AS failed_share"
            f" FROM webhook_deliveries WHERE {_DELIVERIES_WHERE}",
            unit=p.UNIT_SHARE,
            steps=((None, "green"), (0.05, "orange"), (0.2, "red")),
            description="Share of attempts that failed (retried later) or were dead-lettered.",
        )
    )
    d = d.with_panel(
        p.stat_panel(
            grid,
            "Dead letters",
            "SELECT countIf(status = 'dead') AS dead_letters"
            f" FROM webhook_deliveries WHERE {_DELIVERIES_WHERE}",
            unit=p.UNIT_COUNT,
            steps=((None, "green"), (1, "red")),
            description="Deliveries given up: attempts exhausted or a non-retryable answer"
            " (4xx). The alert did not reach that channel.",
        )
    )
    anomaly_cols = [
        "ts",
        "tenant",
        "dimensions",
        "metric",
        "value",
        "baseline",
        "baseline_ratio",
        "score",
        "window_s",
        "detected_at",
    ]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Anomalies",
            "SELECT window_start AS ts, scope['tenant'] AS tenant,"
            f" {_SCOPE_REST} AS dimensions, metric, toFloat64(value) AS value,"
            " toFloat64(baseline) AS baseline, ratio AS baseline_ratio, score, window_s,"
            f" detected_at FROM anomalies FINAL WHERE {_ANOMALIES_WHERE}"
            " ORDER BY ts DESC, tenant, dimensions LIMIT 200",
            columns=anomaly_cols,
            sort_by="ts",
            h=9,
            description="The latest 200 anomalies: the window's value and the scope's"
            " baseline per window (in the metric's unit: USD for cost_usd, else tokens or"
            " calls), value / baseline, and the robust z-score (value − median) / (1.4826 ×"
            " MAD).",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Anomalies by metric",
            "SELECT $__timeInterval(window_start) AS time, metric, count() AS anomalies"
            f" FROM anomalies FINAL WHERE {_ANOMALIES_WHERE}"
            " GROUP BY time, metric ORDER BY time, metric",
            unit=p.UNIT_COUNT,
            series_label="metric",
            stacked=True,
            bars=True,
            w=8,
            description="Anomalous windows per time bucket, stacked by metric.",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Worst ratio to baseline",
            "SELECT $__timeInterval(window_start) AS time, metric, max(ratio) AS max_ratio"
            f" FROM anomalies FINAL WHERE {_ANOMALIES_WHERE}"
            " GROUP BY time, metric ORDER BY time, metric",
            unit=p.UNIT_RATIO,
            series_label="metric",
            bars=True,
            w=8,
            description="The largest value / baseline among the anomalies of each bucket.",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Anomalous spend vs baseline",
            "SELECT $__timeInterval(window_start) AS time,"
            " toFloat64(sum(value)) AS value_usd, toFloat64(sum(baseline)) AS baseline_usd"
            f" FROM anomalies FINAL WHERE metric = 'cost_usd' AND {_ANOMALIES_WHERE}"
            " GROUP BY time ORDER BY time",
            unit=p.UNIT_USD,
            bars=True,
            w=8,
            description="cost_usd anomalies: the anomalous windows' spend next to what the"
            " baseline expected for them.",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Alerts by kind",
            "SELECT $__timeInterval(ts) AS time, kind, count() AS alerts"
            f" FROM alerts FINAL WHERE {_ALERTS_WHERE} GROUP BY time, kind ORDER BY time, kind",
            unit=p.UNIT_COUNT,
            series_label="kind",
            stacked=True,
            bars=True,
            description="Alerts per time bucket, stacked by kind (budget_threshold, anomaly,"
            " spend_rate, unpriced_cost, dlq_rate).",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Rejected events (DLQ-rate alerts)",
            "SELECT $__timeInterval(ts) AS time,"
            " max(JSONExtractFloat(data, 'value')) AS rejected_per_minute"
            f" FROM alerts FINAL WHERE kind = 'dlq_rate' AND {_ALERTS_WHERE}"
            " GROUP BY time ORDER BY time",
            unit=p.UNIT_COUNT,
            bars=True,
            description="Events dead-lettered in the worst minute of each bucket, from the"
            " dlq_rate alerts: only minutes at or above the rule's threshold reach ClickHouse."
            " The full DLQ rate is the Prometheus counter tokenpipe_events_rejected_total on"
            " the worker's /metrics.",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Webhook attempts by status",
            "SELECT $__timeInterval(ts) AS time, status, count() AS attempts"
            f" FROM webhook_deliveries WHERE {_DELIVERIES_WHERE}"
            " GROUP BY time, status ORDER BY time, status",
            unit=p.UNIT_COUNT,
            series_label="status",
            stacked=True,
            bars=True,
            description="Delivery attempts per time bucket: ok, failed (retried) and dead"
            " (given up).",
        )
    )
    d = d.with_panel(
        p.timeseries_panel(
            grid,
            "Webhook latency",
            "SELECT $__timeInterval(ts) AS time, quantile(0.5)(latency_ms) AS p50,"
            " quantile(0.95)(latency_ms) AS p95, max(latency_ms) AS slowest"
            f" FROM webhook_deliveries WHERE {_DELIVERIES_WHERE} GROUP BY time ORDER BY time",
            unit=UNIT_MS,
            description="Attempt latency per time bucket: median, 95th percentile and"
            " maximum (timeouts show as the client timeout).",
        )
    )
    channel_cols = [
        "channel",
        "alerts",
        "attempts",
        "ok",
        "failed",
        "dead",
        "failed_share",
        "p95_latency_ms",
        "last_seen",
    ]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Webhook deliveries by channel",
            "SELECT channel, uniqExact(alert_id) AS alerts, count() AS attempts,"
            " countIf(status = 'ok') AS ok, countIf(status = 'failed') AS failed,"
            " countIf(status = 'dead') AS dead, (failed + dead) / attempts AS failed_share,"
            " quantile(0.95)(latency_ms) AS p95_latency_ms, max(ts) AS last_seen"
            f" FROM webhook_deliveries WHERE {_DELIVERIES_WHERE}"
            " GROUP BY channel ORDER BY attempts DESC, channel",
            columns=channel_cols,
            h=5,
            description="Per channel: alerts delivered, attempts by outcome, share of attempts"
            " that failed, latency and the last attempt.",
        )
    )
    dead_cols = ["ts", "channel", "kind", "attempt", "http_status", "error", "title"]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Dead letters",
            "SELECT w.ts AS ts, w.channel AS channel, a.kind AS kind, w.attempt AS attempt,"
            " w.http_status AS http_status, w.error AS error, a.title AS title"
            " FROM webhook_deliveries AS w"
            " LEFT JOIN (SELECT alert_id, kind, title FROM alerts FINAL) AS a"
            " ON a.alert_id = w.alert_id"
            " WHERE w.status = 'dead' AND $__timeFilter(w.ts)"
            f" AND w.alert_id IN (SELECT alert_id FROM alerts WHERE {_ALERT_FILTER})"
            " ORDER BY ts DESC, channel LIMIT 100",
            columns=dead_cols,
            h=7,
            description="Deliveries given up, with the last answer (HTTP status, or none on a"
            " network error or timeout) and the alert that did not arrive.",
        )
    )
    recent_cols = ["ts", "kind", "severity", "tenant", "dimensions", "title"]
    d = d.with_panel(
        p.table_panel(
            grid,
            "Recent alerts",
            "SELECT ts, kind, severity, tenant,"
            " arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), mapKeys(scope),"
            " mapValues(scope)), ', ') AS dimensions, title"
            f" FROM alerts FINAL WHERE {_ALERTS_WHERE} ORDER BY ts DESC, kind LIMIT 200",
            columns=recent_cols,
            h=10,
            description="The latest 200 alerts of every kind (tenant '' = system-wide).",
        )
    )
    return d.build()
