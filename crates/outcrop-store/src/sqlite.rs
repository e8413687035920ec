use crate::{
    secrets::SecretBox, user_arn, AccessKeyRecord, ApiKeyRecord, Credential, ImportJobRecord,
    ImportedModelRecord, NewAccessKey, QuotaOverride, Store, StoreError, UsageRecord, UserRecord,
    DEFAULT_ACCOUNT, DEV_ACCESS_KEY, DEV_SECRET_KEY,
};
use async_trait::async_trait;
use outcrop_sigv4::SecretKey;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use std::path::Path;

/// The embedded store: one SQLite file in the data directory (WAL mode), with secrets sealed
/// by the key in `secret.key` beside it.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    secrets: SecretBox,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations. The
    /// sealing key is `secret.key` in the same directory (created when missing).
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let key_path = path.with_file_name("secret.key");
        let secrets = SecretBox::open_or_create(&key_path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool, secrets })
    }
}

impl SqliteStore {
    async fn user_exists(&self, account_id: &str, user_name: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM users WHERE account_id = ? AND user_name = ?")
                .bind(account_id)
                .bind(user_name)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn set_dev_key(&self, enabled: bool) -> Result<(), StoreError> {
        if enabled {
            sqlx::query(
                "INSERT OR IGNORE INTO access_keys (access_key_id, secret_access_key, account_id, principal_arn, loopback_only)
                 VALUES (?, ?, ?, ?, 1)",
            )
            .bind(DEV_ACCESS_KEY)
            .bind(self.secrets.seal(DEV_ACCESS_KEY, DEV_SECRET_KEY))
            .bind(DEFAULT_ACCOUNT)
            .bind(format!("arn:aws:iam::{DEFAULT_ACCOUNT}:root"))
            .execute(&self.pool)
            .await?;
        } else {
            sqlx::query("DELETE FROM access_keys WHERE access_key_id = ? AND loopback_only = 1")
                .bind(DEV_ACCESS_KEY)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn ensure_defaults(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT OR IGNORE INTO accounts (account_id) VALUES (?)")
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
                sqlx::query("UPDATE access_keys SET secret_access_key = ? WHERE access_key_id = ?")
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
             FROM access_keys WHERE access_key_id = ?",
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
            "INSERT OR IGNORE INTO model_agreements (account_id, model_id) VALUES (?, ?)",
        )
        .bind(account_id)
        .bind(model_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_agreement(&self, account_id: &str, model_id: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM model_agreements WHERE account_id = ? AND model_id = ?")
                .bind(account_id)
                .bind(model_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn has_agreement(&self, account_id: &str, model_id: &str) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT 1 FROM model_agreements WHERE account_id = ? AND model_id = ?")
                .bind(account_id)
                .bind(model_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    async fn put_use_case(&self, account_id: &str, form_data: &[u8]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO use_case_forms (account_id, form_data) VALUES (?, ?)
             ON CONFLICT(account_id) DO UPDATE SET form_data = excluded.form_data,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(account_id)
        .bind(form_data)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn use_case(&self, account_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT form_data FROM use_case_forms WHERE account_id = ?")
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
        let done = sqlx::query("INSERT OR IGNORE INTO users (account_id, user_name) VALUES (?, ?)")
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
             VALUES (?, ?, ?, ?, 0)",
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
            "SELECT user_name, created_at FROM users WHERE account_id = ? ORDER BY user_name",
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
        sqlx::query("DELETE FROM access_keys WHERE account_id = ? AND principal_arn = ?")
            .bind(account_id)
            .bind(user_arn(account_id, user_name))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_keys WHERE account_id = ? AND user_name = ?")
            .bind(account_id)
            .bind(user_name)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE account_id = ? AND user_name = ?")
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
             WHERE account_id = ? ORDER BY created_at, access_key_id",
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
            sqlx::query("DELETE FROM access_keys WHERE account_id = ? AND access_key_id = ?")
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
            "INSERT INTO user_policies (account_id, user_name, policy_name, document) VALUES (?, ?, ?, ?)
             ON CONFLICT(account_id, user_name, policy_name) DO UPDATE SET document = excluded.document,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
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
             WHERE account_id = ? AND user_name = ? ORDER BY policy_name",
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
            "INSERT INTO logging_configs (account_id, config) VALUES (?, ?)
             ON CONFLICT(account_id) DO UPDATE SET config = excluded.config,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(account_id)
        .bind(config)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn logging_config(&self, account_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT config FROM logging_configs WHERE account_id = ?")
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn delete_logging_config(&self, account_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM logging_configs WHERE account_id = ?")
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_quota_override(&self, q: &QuotaOverride) -> Result<(), StoreError> {
        let int = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        sqlx::query(
            "INSERT INTO quota_overrides (model_id, requests_per_minute, tokens_per_minute, tokens_per_day)
             VALUES (?, ?, ?, ?)
             ON CONFLICT(model_id) DO UPDATE SET requests_per_minute = excluded.requests_per_minute,
                 tokens_per_minute = excluded.tokens_per_minute, tokens_per_day = excluded.tokens_per_day,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(&q.model_id)
        .bind(int(q.requests_per_minute))
        .bind(int(q.tokens_per_minute))
        .bind(int(q.tokens_per_day))
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
        let done = sqlx::query("DELETE FROM quota_overrides WHERE model_id = ?")
            .bind(model_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_usage(&self, r: &UsageRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR IGNORE INTO usage_records (request_id, time, account_id, principal_arn, model_id,
                operation, input_tokens, output_tokens, latency_ms, first_byte_ms, status, error_code,
                input_price_per_1k, output_price_per_1k, cost_usd, cache_read_tokens,
                cache_write_tokens)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
             WHERE (?1 IS NULL OR account_id = ?1) AND (?2 IS NULL OR time >= ?2)
               AND (?3 IS NULL OR time < ?3)
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

    async fn agreements(&self, account_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT model_id FROM model_agreements WHERE account_id = ? ORDER BY model_id",
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
mod access_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn defaults_are_created_once_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outcrop.db");
        let store = SqliteStore::open(&path).await.unwrap();
        store.ensure_defaults().await.unwrap();
        store.ensure_defaults().await.unwrap();
        assert!(store.credential(DEV_ACCESS_KEY).await.unwrap().is_none());
        store.set_dev_key(true).await.unwrap();
        store.set_dev_key(true).await.unwrap();
        drop(store);
        let store = SqliteStore::open(&path).await.unwrap();
        let cred = store.credential(DEV_ACCESS_KEY).await.unwrap().unwrap();
        assert_eq!(cred.account_id, DEFAULT_ACCOUNT);
        assert_eq!(cred.secret.expose(), "test");
        assert!(cred.loopback_only);
        assert_eq!(cred.principal_arn, "arn:aws:iam::000000000000:root");
        assert!(store.credential("nope").await.unwrap().is_none());
        store.set_dev_key(false).await.unwrap();
        assert!(store.credential(DEV_ACCESS_KEY).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn users_keys_and_policies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outcrop.db");
        let store = SqliteStore::open(&path).await.unwrap();
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
            if let Ok(bytes) = std::fs::read(dir.path().join(f)) {
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
