-- Console sessions, kept in the store so that every server on it knows them. The cookie is
-- stored only as its SHA-256; a session ends at its expiry or when its access key is deleted.
CREATE TABLE console_sessions (
    id_sha256 TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL,
    principal_arn TEXT NOT NULL,
    access_key_id TEXT NOT NULL,
    region TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
