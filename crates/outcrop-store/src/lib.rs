//! Durable state behind one trait, [`Store`], so the server never names a database.
//! [`SqlStore`] implements it over SQLite (the embedded default) and over Postgres (shared by
//! several gateway replicas).
//!
//! # Security
//! SigV4 verification needs each secret access key itself, so secrets are stored sealed
//! (ChaCha20-Poly1305) under a key in a separate 0600 file ([`SecretBox`]); the database file
//! alone reveals none. Protect the key file as you would a credentials file.

#![forbid(unsafe_code)]

mod imports;
mod secrets;
mod sql;
mod usage;

pub use imports::{ImportJobRecord, ImportStatus, ImportedModelRecord};
pub use secrets::SecretBox;
pub use sql::SqlStore;
pub use usage::{
    cache_cost, cost, cost_pico, report, scaled_price, GroupBy, Report, Totals, UsageRecord,
};

use async_trait::async_trait;
use outcrop_sigv4::SecretKey;

/// The account every fresh data directory gets, as in AWS's documentation examples.
pub const DEFAULT_ACCOUNT: &str = "000000000000";
/// The development key pair (`test`/`test`), usable while the server listens on loopback only.
pub const DEV_ACCESS_KEY: &str = "test";
const DEV_SECRET_KEY: &str = "test";

/// An access key and whom it belongs to.
#[derive(Debug, Clone)]
pub struct Credential {
    pub access_key_id: String,
    pub secret: SecretKey,
    /// When set, requests must carry this `X-Amz-Security-Token`.
    pub session_token: Option<String>,
    pub account_id: String,
    pub principal_arn: String,
    /// Only accepted from a loopback client on a loopback listener (the development key).
    pub loopback_only: bool,
}

/// A freshly issued key pair: the only time the secret is shown.
#[derive(Debug, Clone)]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret: SecretKey,
    pub principal_arn: String,
}

/// A user as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user_name: String,
    pub arn: String,
    pub created_at: String,
}

/// An access key as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub principal_arn: String,
    pub created_at: String,
    pub loopback_only: bool,
}

/// A Bedrock API key (long-term): an IAM service-specific credential of a user for
/// `bedrock.amazonaws.com`. The key itself is never stored, only a hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// `ACCA…`, as IAM names service-specific credentials.
    pub credential_id: String,
    /// The key's public half, `BedrockAPIKey-…-at-ACCOUNT`.
    pub alias: String,
    /// Hex SHA-256 of the secret half.
    pub secret_sha256: String,
    pub account_id: String,
    pub user_name: String,
    /// `true`: Active; `false`: Inactive (refused until made active again).
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; `None`: never expires.
    pub expires_at: Option<String>,
}

impl ApiKeyRecord {
    pub fn principal_arn(&self) -> String {
        user_arn(&self.account_id, &self.user_name)
    }
}

/// A model's quota limits as an operator set them; `None`: unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaOverride {
    pub model_id: String,
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub tokens_per_day: Option<u64>,
}

/// A console session as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// Hex SHA-256 of the session cookie (the cookie itself is never stored).
    pub id_sha256: String,
    pub account_id: String,
    pub principal_arn: String,
    /// The key the session was opened with: deleting it ends the session.
    pub access_key_id: String,
    pub region: String,
    pub csrf: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
}

/// One quota window of an account's use of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaWindow {
    pub account_id: String,
    pub model_id: String,
    /// `rpm`, `tpm` (minute windows) or `tpd` (day windows).
    pub kind: &'static str,
    /// Minutes or days since the epoch.
    pub index: i64,
}

/// The ARN of a user, as IAM writes it.
pub fn user_arn(account_id: &str, user_name: &str) -> String {
    format!("arn:aws:iam::{account_id}:user/{user_name}")
}

/// Store failures; details are logged, never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("secret key file: {0}")]
    KeyFile(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates the default account when it is missing.
    async fn ensure_defaults(&self) -> Result<(), StoreError>;

    /// Keeps (creating if missing) or deletes the development key pair `test`/`test`, the
    /// default account's root, usable only from this machine.
    async fn set_dev_key(&self, enabled: bool) -> Result<(), StoreError>;

    /// The credential for an access key id, if there is one.
    async fn credential(&self, access_key_id: &str) -> Result<Option<Credential>, StoreError>;

    /// Records the account's agreement for a model; `false` if it already had one.
    async fn create_agreement(&self, account_id: &str, model_id: &str) -> Result<bool, StoreError>;

    /// Removes the account's agreement for a model; `false` if there was none.
    async fn delete_agreement(&self, account_id: &str, model_id: &str) -> Result<bool, StoreError>;

    async fn has_agreement(&self, account_id: &str, model_id: &str) -> Result<bool, StoreError>;

    /// Stores (replacing) the account's model-access use-case form.
    async fn put_use_case(&self, account_id: &str, form_data: &[u8]) -> Result<(), StoreError>;

    async fn use_case(&self, account_id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Creates an IAM-style user; `None` if the name is taken in the account.
    async fn create_user(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Issues a new access key pair for an existing user; `None` if there is no such user.
    async fn create_access_key(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Option<NewAccessKey>, StoreError>;

    async fn list_users(&self, account_id: &str) -> Result<Vec<UserRecord>, StoreError>;

    /// Deletes a user with its access keys and policies; `false` if there was no such user.
    async fn delete_user(&self, account_id: &str, user_name: &str) -> Result<bool, StoreError>;

    async fn list_access_keys(&self, account_id: &str) -> Result<Vec<AccessKeyRecord>, StoreError>;

    /// Deletes an access key of the account; `false` if it has no such key.
    async fn delete_access_key(
        &self,
        account_id: &str,
        access_key_id: &str,
    ) -> Result<bool, StoreError>;

    /// Stores a new API key; `false` if the user does not exist.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<bool, StoreError>;

    /// The API key with this alias, if there is one.
    async fn api_key(&self, alias: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// An account's API keys, or one user's, oldest first.
    async fn list_api_keys(
        &self,
        account_id: &str,
        user_name: Option<&str>,
    ) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Makes a key Active or Inactive; `false` if there is no such key.
    async fn set_api_key_active(
        &self,
        account_id: &str,
        credential_id: &str,
        active: bool,
    ) -> Result<bool, StoreError>;

    /// Deletes a key; `false` if there is no such key.
    async fn delete_api_key(
        &self,
        account_id: &str,
        credential_id: &str,
    ) -> Result<bool, StoreError>;

    /// Stores (replacing) a user's inline policy; `false` if there is no such user.
    async fn put_user_policy(
        &self,
        account_id: &str,
        user_name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<bool, StoreError>;

    /// A user's inline policies as (name, document), by name.
    async fn user_policies(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// The model ids the account has agreements for, sorted.
    async fn agreements(&self, account_id: &str) -> Result<Vec<String>, StoreError>;

    /// Records a new import job; `false` when the account has a job of that name already.
    async fn create_import_job(&self, job: &ImportJobRecord) -> Result<bool, StoreError>;

    /// Replaces a job's record (its status moved on).
    async fn update_import_job(&self, job: &ImportJobRecord) -> Result<(), StoreError>;

    /// The account's import jobs, oldest first; `None`: every account's.
    async fn import_jobs(
        &self,
        account_id: Option<&str>,
    ) -> Result<Vec<ImportJobRecord>, StoreError>;

    /// Records the model a job made and the job's new record, together; `false` (and nothing
    /// written) when the account has a model of that name already.
    async fn complete_import(
        &self,
        job: &ImportJobRecord,
        model: &ImportedModelRecord,
    ) -> Result<bool, StoreError>;

    /// The account's imported models, oldest first.
    async fn imported_models(
        &self,
        account_id: &str,
    ) -> Result<Vec<ImportedModelRecord>, StoreError>;

    /// Removes an imported model's record; `false` if there was none.
    async fn delete_imported_model(
        &self,
        account_id: &str,
        model_id: &str,
    ) -> Result<bool, StoreError>;

    /// Keeps an invocation log record (a JSON document) until it is delivered.
    async fn enqueue_invocation_log(&self, job: &str) -> Result<(), StoreError>;

    /// Leases up to `limit` waiting records, oldest first, to `owner` until `lease_until`
    /// (ms since the epoch): those never leased or whose lease ended before `now`.
    async fn lease_invocation_logs(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError>;

    /// Forgets a delivered (or given up) record.
    async fn delete_invocation_log(&self, id: i64) -> Result<(), StoreError>;

    /// Records a console session (and forgets those expired before `now`, RFC 3339).
    async fn create_console_session(
        &self,
        session: &ConsoleSession,
        now: &str,
    ) -> Result<(), StoreError>;

    /// The session of a cookie hash, unless it expired before `now` or its key is gone.
    async fn console_session(
        &self,
        id_sha256: &str,
        now: &str,
    ) -> Result<Option<ConsoleSession>, StoreError>;

    /// Changes a session's region; `false` if there is no such session.
    async fn set_console_session_region(
        &self,
        id_sha256: &str,
        region: &str,
    ) -> Result<bool, StoreError>;

    async fn end_console_session(&self, id_sha256: &str) -> Result<(), StoreError>;

    /// Stores (replacing) the account's model invocation logging configuration (JSON).
    async fn put_logging_config(&self, account_id: &str, config: &str) -> Result<(), StoreError>;

    async fn logging_config(&self, account_id: &str) -> Result<Option<String>, StoreError>;

    /// Removes it; `false` if there was none.
    async fn delete_logging_config(&self, account_id: &str) -> Result<bool, StoreError>;

    /// Stores (replacing) a model's quota limits, set by an operator.
    async fn put_quota_override(&self, limits: &QuotaOverride) -> Result<(), StoreError>;

    /// Adds `amount` (negative to give back) to a quota window's count in one atomic step,
    /// unless the count would then pass `limit`; whether it was added.
    async fn add_to_quota_window(
        &self,
        window: &QuotaWindow,
        amount: i64,
        limit: Option<u64>,
    ) -> Result<bool, StoreError>;

    /// Forgets quota windows of every kind that ended before `window_index` of its kind
    /// (minutes and days since the epoch).
    async fn prune_quota_windows(&self, minute: i64, day: i64) -> Result<(), StoreError>;

    /// Every stored quota override, by model id.
    async fn quota_overrides(&self) -> Result<Vec<QuotaOverride>, StoreError>;

    /// Removes a model's override; `false` if there was none.
    async fn delete_quota_override(&self, model_id: &str) -> Result<bool, StoreError>;

    /// Appends a call to the usage ledger, durably (it is on disk when this returns).
    async fn record_usage(&self, record: &UsageRecord) -> Result<(), StoreError>;

    /// The ledger between `since` and `until` (RFC 3339, either open) for one account (`None`:
    /// all), summed by `group_by` in the database.
    async fn usage_report(
        &self,
        account_id: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
        group_by: GroupBy,
    ) -> Result<Report, StoreError>;

    /// Ledger records with `since <= time < until` (RFC 3339 strings; `None`: unbounded), of
    /// one account or all, oldest first.
    async fn usage_records(
        &self,
        account_id: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
    ) -> Result<Vec<UsageRecord>, StoreError>;
}
