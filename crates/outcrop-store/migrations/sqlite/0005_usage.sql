-- The usage ledger: one row per runtime call (success, error or throttle), written before
-- the response completes. Prices and cost are decimal strings, never floats.
CREATE TABLE usage_records (
    request_id TEXT PRIMARY KEY NOT NULL,
    time TEXT NOT NULL,
    account_id TEXT NOT NULL,
    principal_arn TEXT NOT NULL,
    model_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    latency_ms INTEGER NOT NULL,
    first_byte_ms INTEGER,
    status INTEGER NOT NULL,
    error_code TEXT,
    input_price_per_1k TEXT NOT NULL,
    output_price_per_1k TEXT NOT NULL,
    cost_usd TEXT NOT NULL
);
CREATE INDEX usage_records_by_time ON usage_records (account_id, time);
