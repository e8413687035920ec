-- IAM-style users; each access key belongs to one (or to the account root).
CREATE TABLE users (
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    user_name TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (account_id, user_name)
);
