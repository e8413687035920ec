-- Accounts and their access keys (SigV4 needs the secret itself to recompute signatures).
CREATE TABLE accounts (
    account_id TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY NOT NULL,
    secret_access_key TEXT NOT NULL,
    session_token TEXT,
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    principal_arn TEXT NOT NULL,
    -- 1: only accepted while the server listens on loopback (the development key pair).
    loopback_only INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
