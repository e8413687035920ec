-- Model access per account: agreements (one per model) and the use-case form Anthropic needs.
CREATE TABLE model_agreements (
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    model_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (account_id, model_id)
);

CREATE TABLE use_case_forms (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts(account_id),
    form_data BLOB NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
