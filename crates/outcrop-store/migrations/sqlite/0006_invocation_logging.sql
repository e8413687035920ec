-- Model invocation logging configuration per account (the LoggingConfig JSON, validated).
CREATE TABLE logging_configs (
    account_id TEXT PRIMARY KEY NOT NULL,
    config TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
