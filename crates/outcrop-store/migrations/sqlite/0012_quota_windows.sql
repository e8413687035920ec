-- Quota windows shared by every server on one store: requests and tokens per account, model,
-- kind (rpm, tpm, tpd) and fixed window (the minute, or the UTC day, since the epoch).
CREATE TABLE quota_windows (
    account_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    window_index INTEGER NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (account_id, model_id, kind, window_index)
);
