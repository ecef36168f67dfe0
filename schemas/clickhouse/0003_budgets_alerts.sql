-- Budgets, alerts, anomalies and webhook delivery attempts.
--
-- budgets: every version of every budget definition, as written through the API
-- (PUT/DELETE /v1/budgets). The live definitions are the compacted Kafka topic
-- `budgets`; this table is the history and what dashboards join on. Read with
-- FINAL (or argMax by version) to get the latest row per id; `deleted` = 1 marks a
-- deletion. `definition` is the BudgetDefinition JSON (money as decimal strings).
--
-- alerts: one row per alert id (deterministic, see schemas/alerts.py); a replayed
-- alert is inserted again with the same id and ReplacingMergeTree keeps one.
--
-- anomalies: one row per anomaly id (scope, metric, window start).
--
-- webhook_deliveries: one row per delivery attempt (unique delivery_id), so plain
-- MergeTree; a final outcome (ok/dead) is what the worker consults before sending
-- an alert again after a restart.

CREATE TABLE IF NOT EXISTS budgets
(
    id String,
    version UInt64,
    name String,
    scope Map(String, String),
    period LowCardinality(String),
    unit LowCardinality(String),
    limit Decimal(38, 9),
    mode LowCardinality(String),
    definition String,
    deleted UInt8,
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id
;
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id String,
    kind LowCardinality(String),
    tenant LowCardinality(String),
    scope Map(String, String),
    severity LowCardinality(String),
    title String,
    text String,
    data String,
    budget_id String,
    ts DateTime64(3, 'UTC'),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY alert_id
;
CREATE TABLE IF NOT EXISTS anomalies
(
    anomaly_id String,
    scope Map(String, String),
    metric LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_s UInt32,
    value Decimal(38, 9),
    baseline Decimal(38, 9),
    score Float64,
    ratio Float64,
    detected_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY anomaly_id
;
CREATE TABLE IF NOT EXISTS webhook_deliveries
(
    delivery_id String,
    alert_id String,
    channel LowCardinality(String),
    attempt UInt16,
    status LowCardinality(String),
    http_status Nullable(UInt16),
    error String,
    latency_ms UInt32,
    ts DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (alert_id, channel, ts)
