-- usage_raw: one row per costed usage event, exactly as the sink received it.
--
-- Engine: ReplacingMergeTree deduplicates rows whose whole sorting key is equal,
-- in the background (merges) and at read time with FINAL. A replayed event carries
-- the same tenant, ts and event_id as the original, so the key below makes replays
-- collapse to one row. Rows with the same key are identical replays, so which copy
-- survives does not matter and no version column is needed. Dedup is per partition;
-- a replay has the same ts, hence the same month partition.
-- Caveat: an event_id re-sent with a DIFFERENT ts or tenant is a different key and
-- is kept twice; the stream dedup (and the sink's existing_event_ids check) is the
-- first line of defence, this engine the second.
--
-- ORDER BY (tenant, ts, event_id):
--   * every query on raw rows is "one tenant, a time range" (drill-down, exports,
--     the sink's existing_event_ids check), so tenant then ts is the primary-key
--     prefix that lets the index skip everything else;
--   * event_id is last because it only makes the key unique (dedup); placing it
--     earlier (e.g. after toStartOfHour(ts)) would scatter rows of an hour by a
--     random id and weaken ts range pruning and compression;
--   * an extra toStartOfHour(ts) element would sort identically to ts and add
--     nothing.
-- PARTITION BY month: TTL drops whole old parts cheaply and partitions stay few.
-- TTL: {raw_ttl_days} is rendered by the migrator from the raw_ttl_days setting
-- (default 90); `tokenpipe migrate` re-applies it with MODIFY TTL when it changes.
CREATE TABLE IF NOT EXISTS usage_raw
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    tenant LowCardinality(String),
    user LowCardinality(String),
    team LowCardinality(String),
    feature LowCardinality(String),
    api_key_id LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    cost_usd Decimal(18, 9),
    input_cost_usd Decimal(18, 9),
    cache_read_cost_usd Decimal(18, 9),
    cache_write_cost_usd Decimal(18, 9),
    output_cost_usd Decimal(18, 9),
    priced Bool,
    price_source LowCardinality(String),
    price_version LowCardinality(String),
    request_id String,
    reservation_id String,
    latency_ms UInt32,
    status LowCardinality(String),
    attributes Map(String, String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, ts, event_id)
TTL toDateTime(ts) + INTERVAL {raw_ttl_days} DAY
SETTINGS index_granularity = 8192
;
