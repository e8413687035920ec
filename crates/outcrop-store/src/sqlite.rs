use crate::{Credential, Store, StoreError, DEFAULT_ACCOUNT, DEV_ACCESS_KEY, DEV_SECRET_KEY};
use async_trait::async_trait;
use outcrop_sigv4::SecretKey;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use std::path::Path;

/// The embedded store: one SQLite file in the data directory (WAL mode).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
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
        Ok(SqliteStore { pool })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_defaults(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT OR IGNORE INTO accounts (account_id) VALUES (?)")
            .bind(DEFAULT_ACCOUNT)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT OR IGNORE INTO access_keys (access_key_id, secret_access_key, account_id, principal_arn, loopback_only)
             VALUES (?, ?, ?, ?, 1)",
        )
        .bind(DEV_ACCESS_KEY)
        .bind(DEV_SECRET_KEY)
        .bind(DEFAULT_ACCOUNT)
        .bind(format!("arn:aws:iam::{DEFAULT_ACCOUNT}:root"))
        .execute(&mut *tx)
        .await?;
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
        Ok(row.map(|r| Credential {
            access_key_id: r.get(0),
            secret: SecretKey::new(r.get::<String, _>(1)),
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
}

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
        drop(store);
        let store = SqliteStore::open(&path).await.unwrap();
        let cred = store.credential(DEV_ACCESS_KEY).await.unwrap().unwrap();
        assert_eq!(cred.account_id, DEFAULT_ACCOUNT);
        assert_eq!(cred.secret.expose(), "test");
        assert!(cred.loopback_only);
        assert_eq!(cred.principal_arn, "arn:aws:iam::000000000000:root");
        assert!(store.credential("nope").await.unwrap().is_none());
    }
}
