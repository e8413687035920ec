-- The whole schema for Postgres, the shared store of several gateway replicas. Times are
-- RFC 3339 UTC text, as the SQLite store keeps them, so that both compare and report alike;
-- prices and costs are decimal strings, never floats.
CREATE FUNCTION outcrop_now() RETURNS text LANGUAGE sql STABLE AS
  $$ SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

-- What the store knows of itself: the sealed canary that tells a replica with the wrong
-- sealing key from one with the right key.
CREATE TABLE store_meta (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE accounts (
    account_id TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL DEFAULT outcrop_now()
);

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY NOT NULL,
    secret_access_key TEXT NOT NULL,
    session_token TEXT,
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    principal_arn TEXT NOT NULL,
    loopback_only BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT outcrop_now()
);

CREATE TABLE model_agreements (
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    model_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT outcrop_now(),
    PRIMARY KEY (account_id, model_id)
);

CREATE TABLE use_case_forms (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts(account_id),
    form_data BYTEA NOT NULL,
    updated_at TEXT NOT NULL DEFAULT outcrop_now()
);

CREATE TABLE users (
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    user_name TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT outcrop_now(),
    PRIMARY KEY (account_id, user_name)
);

CREATE TABLE user_policies (
    account_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    document TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT outcrop_now(),
    PRIMARY KEY (account_id, user_name, policy_name),
    FOREIGN KEY (account_id, user_name) REFERENCES users(account_id, user_name) ON DELETE CASCADE
);

CREATE TABLE usage_records (
    request_id TEXT PRIMARY KEY NOT NULL,
    time TEXT NOT NULL,
    account_id TEXT NOT NULL,
    principal_arn TEXT NOT NULL,
    model_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    first_byte_ms BIGINT,
    status BIGINT NOT NULL,
    error_code TEXT,
    input_price_per_1k TEXT NOT NULL,
    output_price_per_1k TEXT NOT NULL,
    cost_usd TEXT NOT NULL,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    -- The cost as an integer of 1e-12 USD, summed exactly by reports.
    cost_pico BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX usage_records_by_time ON usage_records (account_id, time);

CREATE TABLE logging_configs (
    account_id TEXT PRIMARY KEY NOT NULL,
    config TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT outcrop_now()
);

CREATE TABLE quota_overrides (
    model_id TEXT PRIMARY KEY NOT NULL,
    requests_per_minute BIGINT,
    tokens_per_minute BIGINT,
    tokens_per_day BIGINT,
    updated_at TEXT NOT NULL DEFAULT outcrop_now()
);

CREATE TABLE api_keys (
    credential_id TEXT PRIMARY KEY NOT NULL,
    alias TEXT NOT NULL UNIQUE,
    secret_sha256 TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    user_name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'Active',
    created_at TEXT NOT NULL DEFAULT outcrop_now(),
    expires_at TEXT
);
CREATE INDEX api_keys_by_user ON api_keys (account_id, user_name);

CREATE TABLE model_import_jobs (
    account_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    job_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (account_id, job_id),
    UNIQUE (account_id, job_name)
);

CREATE TABLE imported_models (
    account_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (account_id, model_id),
    UNIQUE (account_id, model_name)
);
