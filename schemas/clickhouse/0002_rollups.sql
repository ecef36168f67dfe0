-- Rollups of usage_raw per minute, hour and day.
--
-- Engine: SummingMergeTree. Every rolled-up measure is additive (call counts, token
-- sums, cost sums), so plain columns summed on merge are enough, and Grafana / ad-hoc
-- SQL read them with ordinary sum(...) GROUP BY — no AggregateFunction states and
-- -Merge combinators as AggregatingMergeTree would need. That engine is only worth
-- it for non-additive measures (uniq, quantiles), which we do not keep here.
-- Merges are eventual: readers must always aggregate (sum ... GROUP BY), never read
-- a rollup row as final.
--
-- Money: raw costs are Decimal(18, 9) (max ~1e9 USD per event); sums are
-- Decimal(38, 9) (max ~1e29 USD), which is also what sum(Decimal(18, 9)) returns,
-- so neither the MV nor a SummingMergeTree merge can overflow. Token sums are
-- UInt64 (1.8e19 tokens per bucket row).
--
-- Feeding: each materialized view reads usage_raw directly rather than chaining
-- 1m -> 1h -> 1d. Each rollup can then be rebuilt or backfilled from raw alone
-- (INSERT INTO usage_rollup_1h SELECT ... FROM usage_raw WHERE ...), dropping or
-- re-creating one view cannot break another, and a view never depends on the
-- shorter TTL of a finer rollup. The cost is three GROUP BYs over each inserted
-- block instead of one; a block is a sink batch (~10k rows), so this is cheap.
-- MVs see every INSERT into usage_raw, duplicates included: the sink inserts each
-- event_id once (Store.existing_event_ids); ReplacingMergeTree only fixes raw rows.
--
-- Keys: ORDER BY (tenant, bucket, dimensions...): dashboards filter by tenant and
-- time range first. The whole ORDER BY is the summing key.
-- TTL (fixed defaults): 1m rows 30 days (minute resolution is for recent
-- incidents; raw rows cover drill-down for raw_ttl_days), 1h rows 400 days (a year
-- plus a month for year-over-year), 1d rows forever (small: one row per
-- dimension combination per day).

CREATE TABLE IF NOT EXISTS usage_rollup_1m
(
    bucket DateTime('UTC'),
    tenant LowCardinality(String),
    user LowCardinality(String),
    team LowCardinality(String),
    feature LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    api_key_id LowCardinality(String),
    calls UInt64,
    priced_calls UInt64,
    unpriced_calls UInt64,
    error_calls UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    cost_usd Decimal(38, 9),
    input_cost_usd Decimal(38, 9),
    cache_read_cost_usd Decimal(38, 9),
    cache_write_cost_usd Decimal(38, 9),
    output_cost_usd Decimal(38, 9)
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMMDD(bucket)
ORDER BY (tenant, bucket, user, team, feature, provider, model, api_key_id)
TTL bucket + INTERVAL 30 DAY
;

CREATE TABLE IF NOT EXISTS usage_rollup_1h
(
    bucket DateTime('UTC'),
    tenant LowCardinality(String),
    user LowCardinality(String),
    team LowCardinality(String),
    feature LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    api_key_id LowCardinality(String),
    calls UInt64,
    priced_calls UInt64,
    unpriced_calls UInt64,
    error_calls UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    cost_usd Decimal(38, 9),
    input_cost_usd Decimal(38, 9),
    cache_read_cost_usd Decimal(38, 9),
    cache_write_cost_usd Decimal(38, 9),
    output_cost_usd Decimal(38, 9)
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, bucket, user, team, feature, provider, model, api_key_id)
TTL bucket + INTERVAL 400 DAY
;

CREATE TABLE IF NOT EXISTS usage_rollup_1d
(
    bucket DateTime('UTC'),
    tenant LowCardinality(String),
    user LowCardinality(String),
    team LowCardinality(String),
    feature LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    api_key_id LowCardinality(String),
    calls UInt64,
    priced_calls UInt64,
    unpriced_calls UInt64,
    error_calls UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    cost_usd Decimal(38, 9),
    input_cost_usd Decimal(38, 9),
    cache_read_cost_usd Decimal(38, 9),
    cache_write_cost_usd Decimal(38, 9),
    output_cost_usd Decimal(38, 9)
)
ENGINE = SummingMergeTree
PARTITION BY toYear(bucket)
ORDER BY (tenant, bucket, user, team, feature, provider, model, api_key_id)
;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_rollup_1m_mv TO usage_rollup_1m AS
SELECT
    toDateTime(toStartOfMinute(ts), 'UTC') AS bucket,
    tenant,
    user,
    team,
    feature,
    provider,
    model,
    api_key_id,
    count() AS calls,
    countIf(priced) AS priced_calls,
    countIf(NOT priced) AS unpriced_calls,
    countIf(status != 'ok') AS error_calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_usd) AS cost_usd,
    sum(input_cost_usd) AS input_cost_usd,
    sum(cache_read_cost_usd) AS cache_read_cost_usd,
    sum(cache_write_cost_usd) AS cache_write_cost_usd,
    sum(output_cost_usd) AS output_cost_usd
FROM usage_raw
GROUP BY bucket, tenant, user, team, feature, provider, model, api_key_id
;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_rollup_1h_mv TO usage_rollup_1h AS
SELECT
    toDateTime(toStartOfHour(ts), 'UTC') AS bucket,
    tenant,
    user,
    team,
    feature,
    provider,
    model,
    api_key_id,
    count() AS calls,
    countIf(priced) AS priced_calls,
    countIf(NOT priced) AS unpriced_calls,
    countIf(status != 'ok') AS error_calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_usd) AS cost_usd,
    sum(input_cost_usd) AS input_cost_usd,
    sum(cache_read_cost_usd) AS cache_read_cost_usd,
    sum(cache_write_cost_usd) AS cache_write_cost_usd,
    sum(output_cost_usd) AS output_cost_usd
FROM usage_raw
GROUP BY bucket, tenant, user, team, feature, provider, model, api_key_id
;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_rollup_1d_mv TO usage_rollup_1d AS
SELECT
    toDateTime(toStartOfDay(ts), 'UTC') AS bucket,
    tenant,
    user,
    team,
    feature,
    provider,
    model,
    api_key_id,
    count() AS calls,
    countIf(priced) AS priced_calls,
    countIf(NOT priced) AS unpriced_calls,
    countIf(status != 'ok') AS error_calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_usd) AS cost_usd,
    sum(input_cost_usd) AS input_cost_usd,
    sum(cache_read_cost_usd) AS cache_read_cost_usd,
    sum(cache_write_cost_usd) AS cache_write_cost_usd,
    sum(output_cost_usd) AS output_cost_usd
FROM usage_raw
GROUP BY bucket, tenant, user, team, feature, provider, model, api_key_id
;
