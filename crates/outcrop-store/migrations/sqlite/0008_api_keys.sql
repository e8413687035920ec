-- Bedrock API keys (long-term): IAM service-specific credentials of a user. Only a hash of
-- the secret is kept: a bearer key is compared, never used to sign.
CREATE TABLE api_keys (
    credential_id TEXT PRIMARY KEY NOT NULL,
    alias TEXT NOT NULL UNIQUE,
    secret_sha256 TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    user_name TEXT NOT NULL,
    -- 'Active' or 'Inactive'.
    status TEXT NOT NULL DEFAULT 'Active',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- NULL: never expires.
    expires_at TEXT
);
CREATE INDEX api_keys_by_user ON api_keys (account_id, user_name);
