-- IAM-style inline policies of users (JSON documents, validated before they are stored).
CREATE TABLE user_policies (
    account_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    document TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (account_id, user_name, policy_name),
    FOREIGN KEY (account_id, user_name) REFERENCES users(account_id, user_name) ON DELETE CASCADE
);
