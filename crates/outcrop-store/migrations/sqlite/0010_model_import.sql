-- Custom Model Import: jobs and the models they made, per account. Each row keeps its record
-- as a JSON document; the columns beside it are what lookups and uniqueness need.
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
