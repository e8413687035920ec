use crate::{
    secrets::SecretBox, user_arn, AccessKeyRecord, ApiKeyRecord, ConsoleSession, Credential,
    GroupBy, ImportJobRecord, ImportedModelRecord, NewAccessKey, QuotaOverride, QuotaWindow,
    Report, Store, StoreError, Totals, UsageRecord, UserRecord, DEFAULT_ACCOUNT, DEV_ACCESS_KEY,
    DEV_SECRET_KEY,
};
use async_trait::async_trait;
use outcrop_sigv4::SecretKey;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::Row;
use std::path::Path;

/// The store over SQL: one SQLite file in the data directory (WAL mode, the embedded default),
/// or a Postgres database that several gateway replicas share. The queries are written once,
/// in the SQL both engines speak, through sqlx's `Any` driver; each engine has its own
/// migrations. Secrets are sealed by a [`SecretBox`] kept outside the database.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    secrets: SecretBox,
    /// Postgres (a shared store, with a sealing-key canary) rather than SQLite.
    postgres: bool,
}

/// The name of the sealed value that tells whether a sealing key is the database's own.
const CANARY: &str = "sealing-key-canary";

impl SqlStore {
    /// Opens (creating if needed) the SQLite database at `path` and applies pending
    /// migrations. The sealing key is `secret.key` in the same directory (created when
    /// missing).
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let key_path = path.with_file_name("secret.key");
        let secrets = SecretBox::open_or_create(&key_path)?;
        // The path as a URL: `%`, `?` and `#` would otherwise be read as URL syntax.
        let escaped = path
            .to_string_lossy()
            .replace('%', "%25")
            .replace('?', "%3F")
            .replace('#', "%23");
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA foreign_keys = ON",
                        "PRAGMA busy_timeout = 5000",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&format!("sqlite://{escaped}?mode=rwc"))
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqlStore {
            pool,
            secrets,
            postgres: false,
        })
    }

    /// Connects to the Postgres database at `url` (`postgres://...`) and applies pending
    /// migrations. A database whose secrets were sealed under another key is refused: every
    /// replica must be given the same sealing key.
    pub async fn open_postgres(url: &str, secrets: SecretBox) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let store = SqlStore {
            pool,
            secrets,
            postgres: true,
        };
        store.check_sealing_key().await?;
        Ok(store)
    }

    /// The keys this store seals and opens secrets with.
    pub fn secrets(&self) -> &SecretBox {
        &self.secrets
    }

    /// The same database with other sealing keys (a rotation: the new key first).
    pub fn with_secrets(&self, secrets: SecretBox) -> Self {
        SqlStore {
            secrets,
            ..self.clone()
        }
    }

    /// Seals every secret again with the current sealing key, in one transaction (after a
    /// rotation, with the keys being replaced still given to open); how many were.
    pub async fn reseal_secrets(&self) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT access_key_id, secret_access_key FROM access_keys")
            .fetch_all(&mut *tx)
            .await?;
        let mut resealed = 0;
        for row in rows {
            let (id, stored): (String, String) = (row.get(0), row.get(1));
            if self.secrets.is_current(&stored) {
                continue;
            }
            let secret = self.secrets.open(&id, &stored)?;
            sqlx::query("UPDATE access_keys SET secret_access_key = $1 WHERE access_key_id = $2")
                .bind(self.secrets.seal(&id, secret.expose()))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            resealed += 1;
        }
        if self.postgres {
            sqlx::query("UPDATE store_meta SET value = $1 WHERE name = $2")
                .bind(self.secrets.seal(CANARY, CANARY))
                .bind(CANARY)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(resealed)
    }

    /// Records a sealed canary on first use; afterwards, refuses a key that cannot open it.
    async fn check_sealing_key(&self) -> Result<(), StoreError> {
        let sealed = self.secrets.seal(CANARY, CANARY);
        sqlx::query("INSERT INTO store_meta (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(CANARY)
            .bind(&sealed)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM store_meta WHERE name = $1")
            .bind(CANARY)
            .fetch_one(&self.pool)
            .await?;
        let stored: String = row.get(0);
        match self.secrets.open(CANARY, &stored) {
            Ok(opened) if opened.expose() == CANARY => Ok(()),
            _ => Err(StoreError::KeyFile(
                "this sealing key is not the one the database's secrets were sealed with: give every replica the same key (OUTCROP_SEALING_KEY or [store] sealing_key_file)".into(),
            )),
        }
    }
}

impl SqlStore {
    async fn user_exists(&self, account_id: &str, user_name: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM users WHERE account_id = $1 AND user_name = $2")
                .bind(account_id)
                .bind(user_name)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn set_dev_key(&self, enabled: bool) -> Result<(), StoreError> {
        if enabled {
            sqlx::query(
                "INSERT INTO access_keys (access_key_id, secret_access_key, account_id, principal_arn, loopback_only)
                 VALUES ($1, $2, $3, $4, 1) ON CONFLICT DO NOTHING",
            )
            .bind(DEV_ACCESS_KEY)
            .bind(self.secrets.seal(DEV_ACCESS_KEY, DEV_SECRET_KEY))
            .bind(DEFAULT_ACCOUNT)
            .bind(format!("arn:aws:iam::{DEFAULT_ACCOUNT}:root"))
            .execute(&self.pool)
            .await?;
        } else {
            sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1 AND loopback_only = 1")
                .bind(DEV_ACCESS_KEY)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn ensure_defaults(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO accounts (account_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(DEFAULT_ACCOUNT)
            .execute(&mut *tx)
            .await?;
        // Seal secrets written in plain text by earlier versions.
        let plain = sqlx::query("SELECT access_key_id, secret_access_key FROM access_keys")
            .fetch_all(&mut *tx)
            .await?;
        for row in plain {
            let (id, stored): (String, String) = (row.get(0), row.get(1));
            if !SecretBox::is_sealed(&stored) {
                sqlx::query(
                    "UPDATE access_keys SET secret_access_key = $1 WHERE access_key_id = $2",
                )
                .bind(self.secrets.seal(&id, &stored))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn credential(&self, access_key_id: &str) -> Result<Option<Credential>, StoreError> {
        let row = sqlx::query(
            "SELECT access_key_id, secret_access_key, session_token, account_id, principal_arn, loopback_only
             FROM access_keys WHERE access_key_id = $1",
        )
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let access_key_id: String = r.get(0);
        let secret = self.secrets.open(&access_key_id, &r.get::<String, _>(1))?;
        Ok(Some(Credential {
            access_key_id,
            secret,
            session_token: r.get(2),
            account_id: r.get(3),
            principal_arn: r.get(4),
            loopback_only: r.get::<i64, _>(5) != 0,
        }))
    }

    async fn create_agreement(&self, account_id: &str, model_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO model_agreements (account_id, model_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(account_id)
        .bind(model_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_agreement(&self, account_id: &str, model_id: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM model_agreements WHERE account_id = $1 AND model_id = $2")
                .bind(account_id)
                .bind(model_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn has_agreement(&self, account_id: &str, model_id: &str) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT 1 FROM model_agreements WHERE account_id = $1 AND model_id = $2")
                .bind(account_id)
                .bind(model_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    async fn put_use_case(&self, account_id: &str, form_data: &[u8]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO use_case_forms (account_id, form_data) VALUES ($1, $2)
             ON CONFLICT(account_id) DO UPDATE SET form_data = excluded.form_data,
                 updated_at = excluded.updated_at",
        )
        .bind(account_id)
        .bind(form_data)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn use_case(&self, account_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT form_data FROM use_case_forms WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn create_user(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Option<String>, StoreError> {
        let done = sqlx::query(
            "INSERT INTO users (account_id, user_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(account_id)
        .bind(user_name)
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() == 1).then(|| user_arn(account_id, user_name)))
    }

    async fn create_access_key(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Option<NewAccessKey>, StoreError> {
        if !self.user_exists(account_id, user_name).await? {
            return Ok(None);
        }
        let key = NewAccessKey {
            access_key_id: random_access_key_id(),
            secret: SecretKey::new(random_secret()),
            principal_arn: user_arn(account_id, user_name),
        };
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, secret_access_key, account_id, principal_arn, loopback_only)
             VALUES ($1, $2, $3, $4, 0)",
        )
        .bind(&key.access_key_id)
        .bind(self.secrets.seal(&key.access_key_id, key.secret.expose()))
        .bind(account_id)
        .bind(&key.principal_arn)
        .execute(&self.pool)
        .await?;
        Ok(Some(key))
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<bool, StoreError> {
        if !self.user_exists(&key.account_id, &key.user_name).await? {
            return Ok(false);
        }
        api_keys::insert(&self.pool, key).await?;
        Ok(true)
    }

    async fn api_key(&self, alias: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        api_keys::by_alias(&self.pool, alias).await
    }

    async fn list_api_keys(
        &self,
        account_id: &str,
        user_name: Option<&str>,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        api_keys::list(&self.pool, account_id, user_name).await
    }

    async fn set_api_key_active(
        &self,
        account_id: &str,
        credential_id: &str,
        active: bool,
    ) -> Result<bool, StoreError> {
        api_keys::set_active(&self.pool, account_id, credential_id, active).await
    }

    async fn delete_api_key(
        &self,
        account_id: &str,
        credential_id: &str,
    ) -> Result<bool, StoreError> {
        api_keys::delete(&self.pool, account_id, credential_id).await
    }

    async fn list_users(&self, account_id: &str) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_name, created_at FROM users WHERE account_id = $1 ORDER BY user_name",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let user_name: String = r.get(0);
                UserRecord {
                    arn: user_arn(account_id, &user_name),
                    user_name,
                    created_at: r.get(1),
                }
            })
            .collect())
    }

    async fn delete_user(&self, account_id: &str, user_name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM access_keys WHERE account_id = $1 AND principal_arn = $2")
            .bind(account_id)
            .bind(user_arn(account_id, user_name))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_keys WHERE account_id = $1 AND user_name = $2")
            .bind(account_id)
            .bind(user_name)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE account_id = $1 AND user_name = $2")
            .bind(account_id)
            .bind(user_name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_access_keys(&self, account_id: &str) -> Result<Vec<AccessKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT access_key_id, principal_arn, created_at, loopback_only FROM access_keys
             WHERE account_id = $1 ORDER BY created_at, access_key_id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AccessKeyRecord {
                access_key_id: r.get(0),
                principal_arn: r.get(1),
                created_at: r.get(2),
                loopback_only: r.get::<i64, _>(3) != 0,
            })
            .collect())
    }

    async fn delete_access_key(
        &self,
        account_id: &str,
        access_key_id: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM access_keys WHERE account_id = $1 AND access_key_id = $2")
                .bind(account_id)
                .bind(access_key_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_user_policy(
        &self,
        account_id: &str,
        user_name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<bool, StoreError> {
        if !self.user_exists(account_id, user_name).await? {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO user_policies (account_id, user_name, policy_name, document) VALUES ($1, $2, $3, $4)
             ON CONFLICT(account_id, user_name, policy_name) DO UPDATE SET document = excluded.document,
                 updated_at = excluded.updated_at",
        )
        .bind(account_id)
        .bind(user_name)
        .bind(policy_name)
        .bind(document)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    async fn user_policies(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT policy_name, document FROM user_policies
             WHERE account_id = $1 AND user_name = $2 ORDER BY policy_name",
        )
        .bind(account_id)
        .bind(user_name)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn create_import_job(&self, job: &ImportJobRecord) -> Result<bool, StoreError> {
        imports::create_job(&self.pool, job).await
    }

    async fn update_import_job(&self, job: &ImportJobRecord) -> Result<(), StoreError> {
        imports::update_job(&self.pool, job).await
    }

    async fn import_jobs(
        &self,
        account_id: Option<&str>,
    ) -> Result<Vec<ImportJobRecord>, StoreError> {
        imports::jobs(&self.pool, account_id).await
    }

    async fn complete_import(
        &self,
        job: &ImportJobRecord,
        model: &ImportedModelRecord,
    ) -> Result<bool, StoreError> {
        imports::complete(&self.pool, job, model).await
    }

    async fn imported_models(
        &self,
        account_id: &str,
    ) -> Result<Vec<ImportedModelRecord>, StoreError> {
        imports::models(&self.pool, account_id).await
    }

    async fn delete_imported_model(
        &self,
        account_id: &str,
        model_id: &str,
    ) -> Result<bool, StoreError> {
        imports::delete_model(&self.pool, account_id, model_id).await
    }

    async fn put_logging_config(&self, account_id: &str, config: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO logging_configs (account_id, config) VALUES ($1, $2)
             ON CONFLICT(account_id) DO UPDATE SET config = excluded.config,
                 updated_at = excluded.updated_at",
        )
        .bind(account_id)
        .bind(config)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn logging_config(&self, account_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT config FROM logging_configs WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn delete_logging_config(&self, account_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM logging_configs WHERE account_id = $1")
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_quota_override(&self, q: &QuotaOverride) -> Result<(), StoreError> {
        let int = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        sqlx::query(
            "INSERT INTO quota_overrides (model_id, requests_per_minute, tokens_per_minute, tokens_per_day)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT(model_id) DO UPDATE SET requests_per_minute = excluded.requests_per_minute,
                 tokens_per_minute = excluded.tokens_per_minute, tokens_per_day = excluded.tokens_per_day,
                 updated_at = excluded.updated_at",
        )
        .bind(&q.model_id)
        .bind(int(q.requests_per_minute))
        .bind(int(q.tokens_per_minute))
        .bind(int(q.tokens_per_day))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn enqueue_invocation_log(&self, job: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO invocation_log_outbox (job) VALUES ($1)")
            .bind(job)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn lease_invocation_logs(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        // The outer `lease_until < $3` is checked again on each row as it is updated, so two
        // servers never lease one record together.
        let rows = sqlx::query(
            "UPDATE invocation_log_outbox SET owner = $1, lease_until = $2
             WHERE lease_until < $3 AND id IN (
                 SELECT id FROM invocation_log_outbox WHERE lease_until < $3 ORDER BY id LIMIT $4)
             RETURNING id, job",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut leased: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        leased.sort_by_key(|(id, _)| *id);
        Ok(leased)
    }

    async fn delete_invocation_log(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM invocation_log_outbox WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_console_session(
        &self,
        session: &ConsoleSession,
        now: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_sha256, account_id, principal_arn, access_key_id,
                region, csrf, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session.id_sha256)
        .bind(&session.account_id)
        .bind(&session.principal_arn)
        .bind(&session.access_key_id)
        .bind(&session.region)
        .bind(&session.csrf)
        .bind(&session.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn console_session(
        &self,
        id_sha256: &str,
        now: &str,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let row = sqlx::query(
            "SELECT s.id_sha256, s.account_id, s.principal_arn, s.access_key_id, s.region, s.csrf,
                    s.expires_at
             FROM console_sessions s JOIN access_keys k ON k.access_key_id = s.access_key_id
             WHERE s.id_sha256 = $1 AND s.expires_at > $2",
        )
        .bind(id_sha256)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| ConsoleSession {
            id_sha256: r.get(0),
            account_id: r.get(1),
            principal_arn: r.get(2),
            access_key_id: r.get(3),
            region: r.get(4),
            csrf: r.get(5),
            expires_at: r.get(6),
        }))
    }

    async fn set_console_session_region(
        &self,
        id_sha256: &str,
        region: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE console_sessions SET region = $1 WHERE id_sha256 = $2")
            .bind(region)
            .bind(id_sha256)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn end_console_session(&self, id_sha256: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE id_sha256 = $1")
            .bind(id_sha256)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn add_to_quota_window(
        &self,
        window: &QuotaWindow,
        amount: i64,
        limit: Option<u64>,
    ) -> Result<bool, StoreError> {
        let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        if limit.is_some_and(|l| amount > l) {
            return Ok(false);
        }
        // One statement: a new window is inserted, an existing one added to only while the
        // sum stays within the limit (no row comes back when it would not).
        let row = sqlx::query(
            "INSERT INTO quota_windows (account_id, model_id, kind, window_index, used)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (account_id, model_id, kind, window_index)
             DO UPDATE SET used = quota_windows.used + excluded.used
             WHERE $6 IS NULL OR quota_windows.used + excluded.used <= $6
             RETURNING used",
        )
        .bind(&window.account_id)
        .bind(&window.model_id)
        .bind(window.kind)
        .bind(window.index)
        .bind(amount)
        .bind(limit)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    async fn prune_quota_windows(&self, minute: i64, day: i64) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM quota_windows WHERE (kind <> 'tpd' AND window_index < $1)
                OR (kind = 'tpd' AND window_index < $2)",
        )
        .bind(minute)
        .bind(day)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn quota_overrides(&self) -> Result<Vec<QuotaOverride>, StoreError> {
        let rows = sqlx::query(
            "SELECT model_id, requests_per_minute, tokens_per_minute, tokens_per_day
             FROM quota_overrides ORDER BY model_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let uint = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
        Ok(rows
            .into_iter()
            .map(|r| QuotaOverride {
                model_id: r.get(0),
                requests_per_minute: uint(r.get(1)),
                tokens_per_minute: uint(r.get(2)),
                tokens_per_day: uint(r.get(3)),
            })
            .collect())
    }

    async fn delete_quota_override(&self, model_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM quota_overrides WHERE model_id = $1")
            .bind(model_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_usage(&self, r: &UsageRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO usage_records (request_id, time, account_id, principal_arn, model_id,
                operation, input_tokens, output_tokens, latency_ms, first_byte_ms, status, error_code,
                input_price_per_1k, output_price_per_1k, cost_usd, cache_read_tokens,
                cache_write_tokens, cost_pico)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             ON CONFLICT DO NOTHING",
        )
        .bind(&r.request_id)
        .bind(&r.time)
        .bind(&r.account_id)
        .bind(&r.principal_arn)
        .bind(&r.model_id)
        .bind(&r.operation)
        .bind(i64::from(r.input_tokens))
        .bind(i64::from(r.output_tokens))
        .bind(r.latency_ms as i64)
        .bind(r.first_byte_ms.map(|v| v as i64))
        .bind(i64::from(r.status))
        .bind(&r.error_code)
        .bind(&r.input_price_per_1k)
        .bind(&r.output_price_per_1k)
        .bind(&r.cost_usd)
        .bind(i64::from(r.cache_read_tokens))
        .bind(i64::from(r.cache_write_tokens))
        .bind(crate::cost_pico(&r.cost_usd))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn usage_records(
        &self,
        account_id: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT request_id, time, account_id, principal_arn, model_id, operation, input_tokens,
                    output_tokens, latency_ms, first_byte_ms, status, error_code,
                    input_price_per_1k, output_price_per_1k, cost_usd, cache_read_tokens,
                    cache_write_tokens
             FROM usage_records
             WHERE ($1 IS NULL OR account_id = $1) AND ($2 IS NULL OR time >= $2)
               AND ($3 IS NULL OR time < $3)
             ORDER BY time, request_id",
        )
        .bind(account_id)
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| UsageRecord {
                request_id: r.get(0),
                time: r.get(1),
                account_id: r.get(2),
                principal_arn: r.get(3),
                model_id: r.get(4),
                operation: r.get(5),
                input_tokens: r.get::<i64, _>(6) as u32,
                output_tokens: r.get::<i64, _>(7) as u32,
                latency_ms: r.get::<i64, _>(8) as u64,
                first_byte_ms: r.get::<Option<i64>, _>(9).map(|v| v as u64),
                status: r.get::<i64, _>(10) as u16,
                error_code: r.get(11),
                input_price_per_1k: r.get(12),
                output_price_per_1k: r.get(13),
                cost_usd: r.get(14),
                cache_read_tokens: r.get::<i64, _>(15) as u32,
                cache_write_tokens: r.get::<i64, _>(16) as u32,
            })
            .collect())
    }

    async fn usage_report(
        &self,
        account_id: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
        group_by: GroupBy,
    ) -> Result<Report, StoreError> {
        // Sums cast to BIGINT: Postgres sums BIGINTs as NUMERIC, which the Any driver cannot
        // read; the cost's sum is read as text, so it is exact on both engines.
        let rows = sqlx::query(&format!(
            "SELECT {key},
                    CAST(COUNT(*) AS BIGINT),
                    CAST(SUM(CASE WHEN status BETWEEN 200 AND 299 THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN status = 429 THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN status BETWEEN 400 AND 499 AND status <> 429 THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT),
                    CAST(SUM(cache_read_tokens) AS BIGINT), CAST(SUM(cache_write_tokens) AS BIGINT),
                    CAST(SUM(cost_pico) AS TEXT)
             FROM usage_records
             WHERE ($1 IS NULL OR account_id = $1) AND ($2 IS NULL OR time >= $2)
               AND ($3 IS NULL OR time < $3)
             GROUP BY {key}",
            key = group_by.sql_key()
        ))
        .bind(account_id)
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        let mut report = Report::default();
        for r in rows {
            let totals = Totals::from_sums(
                [r.get(1), r.get(2), r.get(3), r.get(4)],
                [r.get(5), r.get(6), r.get(7), r.get(8)],
                &r.get::<String, _>(9),
            );
            report.total.merge(&totals);
            report.rows.insert(r.get(0), totals);
        }
        Ok(report)
    }

    async fn agreements(&self, account_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT model_id FROM model_agreements WHERE account_id = $1 ORDER BY model_id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }
}

/// Random bytes from the OS (through uuid v4, which draws them from `getrandom`).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    out.truncate(n);
    out
}

/// `AKIA` + 16 characters of `A-Z2-7`, the shape of AWS access key ids.
fn random_access_key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let id: String = random_bytes(16)
        .iter()
        .map(|b| ALPHABET[usize::from(b & 31)] as char)
        .collect();
    format!("AKIA{id}")
}

/// 40 characters of `A-Za-z0-9+/`, the shape of AWS secret access keys.
fn random_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    random_bytes(40)
        .iter()
        .map(|b| ALPHABET[usize::from(b & 63)] as char)
        .collect()
}

mod api_keys;
mod imports;

#[cfg(test)]
mod report_tests {
    use super::test_engines;
    use crate::{report, GroupBy, Store, UsageRecord};

    fn record(i: u32) -> UsageRecord {
        let statuses = [200, 200, 429, 400, 500, 503, 424, 200];
        UsageRecord {
            request_id: format!("req-{i}"),
            time: format!("2026-12-0{}T1{}:00:00.000Z", 1 + i % 3, i % 10),
            account_id: if i.is_multiple_of(5) {
                "111122223333"
            } else {
                "000000000000"
            }
            .into(),
            principal_arn: format!("arn:aws:iam::000000000000:user/u{}", i % 2),
            model_id: ["anthropic.claude-v2", "amazon.nova-micro-v1:0"][(i % 2) as usize].into(),
            operation: "InvokeModel".into(),
            input_tokens: 17 * i + 3,
            output_tokens: 5 * i,
            cache_read_tokens: i % 4,
            cache_write_tokens: i % 3,
            latency_ms: 10,
            first_byte_ms: None,
            status: statuses[(i % 8) as usize],
            error_code: None,
            input_price_per_1k: "0.008".into(),
            output_price_per_1k: "0.024".into(),
            cost_usd: crate::cost(17 * i + 3, 5 * i, "0.00025", "0.00125")
                .normalize()
                .to_string(),
        }
    }

    /// The database's sums are the same as summing the records one by one, exactly.
    #[tokio::test]
    async fn reports_summed_in_sql_match_the_records() {
        for engine in test_engines::each().await {
            let store = engine.open().await;
            let records: Vec<UsageRecord> = (0..60).map(record).collect();
            for r in &records {
                store.record_usage(r).await.unwrap();
            }
            for group_by in [GroupBy::Model, GroupBy::Principal, GroupBy::Day] {
                for (account, since, until) in [
                    (None, None, None),
                    (Some("000000000000"), None, None),
                    (Some("000000000000"), Some("2026-12-02"), Some("2026-12-03")),
                ] {
                    let expected: Vec<UsageRecord> = records
                        .iter()
                        .filter(|r| account.is_none_or(|a| r.account_id == a))
                        .filter(|r| since.is_none_or(|s| r.time.as_str() >= s))
                        .filter(|r| until.is_none_or(|u| r.time.as_str() < u))
                        .cloned()
                        .collect();
                    let got = store
                        .usage_report(account, since, until, group_by)
                        .await
                        .unwrap();
                    assert_eq!(got, report(&expected, group_by), "{group_by:?} {account:?}");
                }
            }
        }
    }
}

#[cfg(test)]
mod quota_window_tests {
    use super::test_engines;
    use crate::{QuotaWindow, Store};

    #[tokio::test]
    async fn windows_add_atomically_up_to_their_limit() {
        for engine in test_engines::each().await {
            let store = std::sync::Arc::new(engine.open().await);
            let window = QuotaWindow {
                account_id: "000000000000".into(),
                model_id: "m".into(),
                kind: "rpm",
                index: 29_000_000,
            };
            // 40 concurrent adds of 1 under a limit of 25: exactly 25 get in.
            let adds = (0..40).map(|_| {
                let (store, window) = (store.clone(), window.clone());
                tokio::spawn(async move { store.add_to_quota_window(&window, 1, Some(25)).await })
            });
            let mut admitted = 0;
            for add in adds {
                admitted += usize::from(add.await.unwrap().unwrap());
            }
            assert_eq!(admitted, 25);
            // Giving back makes room; a new window starts empty; an amount over the limit
            // never gets in.
            assert!(store.add_to_quota_window(&window, -2, None).await.unwrap());
            assert!(store
                .add_to_quota_window(&window, 2, Some(25))
                .await
                .unwrap());
            assert!(!store
                .add_to_quota_window(&window, 1, Some(25))
                .await
                .unwrap());
            let next = QuotaWindow {
                index: window.index + 1,
                ..window.clone()
            };
            assert!(store
                .add_to_quota_window(&next, 25, Some(25))
                .await
                .unwrap());
            assert!(!store
                .add_to_quota_window(&next, 26, Some(30))
                .await
                .unwrap());
            store
                .prune_quota_windows(window.index + 1, 0)
                .await
                .unwrap();
            assert!(store
                .add_to_quota_window(&window, 25, Some(25))
                .await
                .unwrap());
        }
    }
}

#[cfg(test)]
mod console_session_tests {
    use super::test_engines;
    use crate::{ConsoleSession, Store, DEFAULT_ACCOUNT};

    #[tokio::test]
    async fn sessions_expire_and_end_with_their_key() {
        for engine in test_engines::each().await {
            let store = engine.open().await;
            store.ensure_defaults().await.unwrap();
            store.create_user(DEFAULT_ACCOUNT, "ana").await.unwrap();
            let key = store
                .create_access_key(DEFAULT_ACCOUNT, "ana")
                .await
                .unwrap()
                .unwrap();
            let session = |id: &str, expires: &str| ConsoleSession {
                id_sha256: id.into(),
                account_id: DEFAULT_ACCOUNT.into(),
                principal_arn: key.principal_arn.clone(),
                access_key_id: key.access_key_id.clone(),
                region: "us-east-1".into(),
                csrf: "c".into(),
                expires_at: expires.into(),
            };
            let now = "2026-12-06T10:00:00.000Z";
            store
                .create_console_session(&session("a", "2026-12-06T18:00:00.000Z"), now)
                .await
                .unwrap();
            store
                .create_console_session(&session("old", "2026-12-06T09:00:00.000Z"), now)
                .await
                .unwrap();
            assert!(store.console_session("old", now).await.unwrap().is_none());
            assert!(store
                .set_console_session_region("a", "eu-west-1")
                .await
                .unwrap());
            assert!(!store
                .set_console_session_region("nope", "eu-west-1")
                .await
                .unwrap());
            let got = store.console_session("a", now).await.unwrap().unwrap();
            assert_eq!(got.region, "eu-west-1");
            assert!(store
                .console_session("a", "2026-12-06T19:00:00.000Z")
                .await
                .unwrap()
                .is_none());
            // Deleting the key ends the session.
            store
                .delete_access_key(DEFAULT_ACCOUNT, &key.access_key_id)
                .await
                .unwrap();
            assert!(store.console_session("a", now).await.unwrap().is_none());
            store.end_console_session("a").await.unwrap();
        }
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::test_engines::{self, Engine};
    use super::SqlStore;
    use crate::{SecretBox, Store, DEFAULT_ACCOUNT};

    #[tokio::test]
    async fn a_rotation_reseals_every_secret_under_the_new_key() {
        for engine in test_engines::each().await {
            let store = engine.open().await;
            store.ensure_defaults().await.unwrap();
            store.create_user(DEFAULT_ACCOUNT, "rita").await.unwrap();
            let key = store
                .create_access_key(DEFAULT_ACCOUNT, "rita")
                .await
                .unwrap()
                .unwrap();
            let (new, new_hex) = SecretBox::generate();
            let rotating = store.with_secrets(new.clone().replacing(&store.secrets));
            assert_eq!(rotating.reseal_secrets().await.unwrap(), 1);
            assert_eq!(rotating.reseal_secrets().await.unwrap(), 0);
            let after = store.with_secrets(new);
            let opened = after.credential(&key.access_key_id).await.unwrap().unwrap();
            assert_eq!(opened.secret.expose(), key.secret.expose());
            assert!(
                store.credential(&key.access_key_id).await.is_err(),
                "the old key alone"
            );
            if let Engine::Postgres { url, key: old_hex } = &engine {
                let old = SecretBox::from_hex(old_hex).unwrap();
                assert!(SqlStore::open_postgres(url, old).await.is_err());
                let both = SecretBox::from_hex(&format!("{new_hex},{old_hex}")).unwrap();
                SqlStore::open_postgres(url, both).await.unwrap();
            }
        }
    }
}

#[cfg(test)]
mod outbox_tests {
    use super::test_engines;
    use crate::Store;

    #[tokio::test]
    async fn records_are_leased_once_until_delivered_or_the_lease_ends() {
        for engine in test_engines::each().await {
            let store = engine.open().await;
            for i in 0..5 {
                store
                    .enqueue_invocation_log(&format!("{{\"n\": {i}}}"))
                    .await
                    .unwrap();
            }
            let a = store
                .lease_invocation_logs("a", 1000, 61_000, 3)
                .await
                .unwrap();
            assert_eq!(
                a.iter().map(|(_, j)| j.as_str()).collect::<Vec<_>>(),
                ["{\"n\": 0}", "{\"n\": 1}", "{\"n\": 2}"]
            );
            let b = store
                .lease_invocation_logs("b", 2000, 62_000, 10)
                .await
                .unwrap();
            assert_eq!(b.len(), 2, "only those not leased");
            for (id, _) in &a[..2] {
                store.delete_invocation_log(*id).await.unwrap();
            }
            // A's lease on the third runs out: another server takes it.
            let c = store
                .lease_invocation_logs("c", 61_001, 121_000, 10)
                .await
                .unwrap();
            assert_eq!(c, vec![a[2].clone()]);
        }
    }
}

#[cfg(test)]
mod sealing_tests {
    use super::test_engines::{self, Engine};
    use super::SqlStore;
    use crate::SecretBox;

    #[tokio::test]
    async fn a_postgres_store_refuses_another_sealing_key() {
        for engine in test_engines::each().await {
            let Engine::Postgres { url, .. } = &engine else {
                continue;
            };
            drop(engine.open().await);
            let other = SecretBox::from_hex(&"11".repeat(32)).unwrap();
            let refused = SqlStore::open_postgres(url, other).await.err().unwrap();
            assert!(
                refused
                    .to_string()
                    .contains("give every replica the same key"),
                "{refused}"
            );
            drop(engine.open().await);
        }
    }
}

/// The engines every store test runs against: SQLite always, Postgres when
/// `OUTCROP_TEST_DATABASE_URL` names a server (`scripts/test` starts one), each test on a
/// database of its own.
#[cfg(test)]
pub(crate) mod test_engines {
    use super::SqlStore;
    use crate::SecretBox;

    pub enum Engine {
        Sqlite(tempfile::TempDir),
        Postgres { url: String, key: String },
    }

    impl Engine {
        /// Opens (again) this engine's store.
        pub async fn open(&self) -> SqlStore {
            match self {
                Engine::Sqlite(dir) => SqlStore::open(&dir.path().join("outcrop.db"))
                    .await
                    .unwrap(),
                Engine::Postgres { url, key } => {
                    SqlStore::open_postgres(url, SecretBox::from_hex(key).unwrap())
                        .await
                        .unwrap()
                }
            }
        }

        pub fn sqlite_dir(&self) -> Option<&std::path::Path> {
            match self {
                Engine::Sqlite(dir) => Some(dir.path()),
                Engine::Postgres { .. } => None,
            }
        }
    }

    pub async fn each() -> Vec<Engine> {
        let mut engines = vec![Engine::Sqlite(tempfile::tempdir().unwrap())];
        if let Ok(url) = std::env::var("OUTCROP_TEST_DATABASE_URL") {
            engines.push(Engine::Postgres {
                url: fresh_database(&url).await,
                key: hex::encode(uuid::Uuid::new_v4().as_bytes().repeat(2)),
            });
        }
        engines
    }

    /// A new, empty database on the server at `url`; its URL.
    async fn fresh_database(url: &str) -> String {
        sqlx::any::install_default_drivers();
        let name = format!("outcrop_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let (server, _) = url.rsplit_once('/').unwrap();
        format!("{server}/{name}")
    }
}

#[cfg(test)]
mod access_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn defaults_are_created_once_and_survive_reopening() {
        for engine in test_engines::each().await {
            let store = engine.open().await;
            store.ensure_defaults().await.unwrap();
            store.ensure_defaults().await.unwrap();
            assert!(store.credential(DEV_ACCESS_KEY).await.unwrap().is_none());
            store.set_dev_key(true).await.unwrap();
            store.set_dev_key(true).await.unwrap();
            drop(store);
            let store = engine.open().await;
            let cred = store.credential(DEV_ACCESS_KEY).await.unwrap().unwrap();
            assert_eq!(cred.account_id, DEFAULT_ACCOUNT);
            assert_eq!(cred.secret.expose(), "test");
            assert!(cred.loopback_only);
            assert_eq!(cred.principal_arn, "arn:aws:iam::000000000000:root");
            assert!(store.credential("nope").await.unwrap().is_none());
            store.set_dev_key(false).await.unwrap();
            assert!(store.credential(DEV_ACCESS_KEY).await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn users_keys_and_policies() {
        for engine in test_engines::each().await {
            let store = engine.open().await;
            store.ensure_defaults().await.unwrap();
            let a = DEFAULT_ACCOUNT;
            store.create_user(a, "alice").await.unwrap().unwrap();
            let key = store.create_access_key(a, "alice").await.unwrap().unwrap();
            assert!(store.put_user_policy(a, "alice", "p", "{}").await.unwrap());
            assert!(store
                .put_user_policy(a, "alice", "p", "{\"v\": 2}")
                .await
                .unwrap());
            assert!(!store.put_user_policy(a, "nobody", "p", "{}").await.unwrap());
            assert_eq!(
                store.user_policies(a, "alice").await.unwrap(),
                vec![("p".to_owned(), "{\"v\": 2}".to_owned())]
            );
            assert_eq!(store.list_users(a).await.unwrap()[0].user_name, "alice");
            // Alice's key only: no development key unless asked for.
            assert_eq!(store.list_access_keys(a).await.unwrap().len(), 1);
            // The secret is sealed: neither the database nor its WAL holds it in plain text.
            let secret = key.secret.expose().to_owned();
            for f in ["outcrop.db", "outcrop.db-wal"] {
                let Some(dir) = engine.sqlite_dir() else {
                    continue;
                };
                if let Ok(bytes) = std::fs::read(dir.join(f)) {
                    assert!(
                        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                        "{f}"
                    );
                }
            }
            assert_eq!(
                store
                    .credential(&key.access_key_id)
                    .await
                    .unwrap()
                    .unwrap()
                    .secret
                    .expose(),
                secret
            );
            assert!(store.delete_user(a, "alice").await.unwrap());
            assert!(store
                .credential(&key.access_key_id)
                .await
                .unwrap()
                .is_none());
            assert!(store.user_policies(a, "alice").await.unwrap().is_empty());
            assert!(!store.delete_access_key(a, "AKIANONE").await.unwrap());
        }
    }
}
