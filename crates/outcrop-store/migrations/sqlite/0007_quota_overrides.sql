-- Per-model quota limits set from the console (they replace the config file's and the defaults).
-- NULL: unlimited.
CREATE TABLE quota_overrides (
    model_id TEXT PRIMARY KEY NOT NULL,
    requests_per_minute INTEGER,
    tokens_per_minute INTEGER,
    tokens_per_day INTEGER,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
