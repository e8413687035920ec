//! Bedrock API keys in SQL.

use crate::{ApiKeyRecord, StoreError};
use sqlx::any::AnyRow;
use sqlx::AnyPool;
use sqlx::Row;

const COLUMNS: &str =
    "credential_id, alias, secret_sha256, account_id, user_name, status, created_at, expires_at";

fn record(r: &AnyRow) -> ApiKeyRecord {
    ApiKeyRecord {
        credential_id: r.get(0),
        alias: r.get(1),
        secret_sha256: r.get(2),
        account_id: r.get(3),
        user_name: r.get(4),
        active: r.get::<String, _>(5) == "Active",
        created_at: r.get(6),
        expires_at: r.get(7),
    }
}

fn status(active: bool) -> &'static str {
    if active {
        "Active"
    } else {
        "Inactive"
    }
}

pub(super) async fn insert(pool: &AnyPool, key: &ApiKeyRecord) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO api_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(&key.credential_id)
    .bind(&key.alias)
    .bind(&key.secret_sha256)
    .bind(&key.account_id)
    .bind(&key.user_name)
    .bind(status(key.active))
    .bind(&key.created_at)
    .bind(&key.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn by_alias(
    pool: &AnyPool,
    alias: &str,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE alias = $1"))
        .bind(alias)
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(record))
}

pub(super) async fn list(
    pool: &AnyPool,
    account_id: &str,
    user_name: Option<&str>,
) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE account_id = $1 AND ($2 IS NULL OR user_name = $3)
         ORDER BY created_at, credential_id"
    ))
    .bind(account_id)
    .bind(user_name)
    .bind(user_name)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(record).collect())
}

pub(super) async fn set_active(
    pool: &AnyPool,
    account_id: &str,
    credential_id: &str,
    active: bool,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE api_keys SET status = $1 WHERE account_id = $2 AND credential_id = $3")
            .bind(status(active))
            .bind(account_id)
            .bind(credential_id)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn delete(
    pool: &AnyPool,
    account_id: &str,
    credential_id: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM api_keys WHERE account_id = $1 AND credential_id = $2")
        .bind(account_id)
        .bind(credential_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use crate::sql::test_engines;
    use crate::{ApiKeyRecord, Store, DEFAULT_ACCOUNT};

    fn key(id: &str, user: &str) -> ApiKeyRecord {
        ApiKeyRecord {
            credential_id: id.into(),
            alias: format!("BedrockAPIKey-{id}-at-{DEFAULT_ACCOUNT}"),
            secret_sha256: "00".into(),
            account_id: DEFAULT_ACCOUNT.into(),
            user_name: user.into(),
            active: true,
            created_at: format!("2026-12-04T00:00:0{}Z", id.len() % 10),
            expires_at: None,
        }
    }

    #[tokio::test]
    async fn api_keys_belong_to_users_and_go_with_them() {
        for engine in test_engines::each().await {
            let store = engine.open().await;
            store.ensure_defaults().await.unwrap();
            assert!(
                !store.insert_api_key(&key("ACCA1", "alice")).await.unwrap(),
                "no such user"
            );
            store.create_user(DEFAULT_ACCOUNT, "alice").await.unwrap();
            store.create_user(DEFAULT_ACCOUNT, "bob").await.unwrap();
            assert!(store.insert_api_key(&key("ACCA1", "alice")).await.unwrap());
            assert!(store.insert_api_key(&key("ACCA22", "bob")).await.unwrap());
            let alias = format!("BedrockAPIKey-ACCA1-at-{DEFAULT_ACCOUNT}");
            assert_eq!(
                store.api_key(&alias).await.unwrap(),
                Some(key("ACCA1", "alice"))
            );
            assert_eq!(
                store
                    .list_api_keys(DEFAULT_ACCOUNT, None)
                    .await
                    .unwrap()
                    .len(),
                2
            );
            assert_eq!(
                store
                    .list_api_keys(DEFAULT_ACCOUNT, Some("bob"))
                    .await
                    .unwrap(),
                vec![key("ACCA22", "bob")]
            );
            assert!(store
                .set_api_key_active(DEFAULT_ACCOUNT, "ACCA1", false)
                .await
                .unwrap());
            assert!(!store.api_key(&alias).await.unwrap().unwrap().active);
            assert!(!store
                .set_api_key_active("111111111111", "ACCA1", true)
                .await
                .unwrap());
            assert!(store.delete_user(DEFAULT_ACCOUNT, "alice").await.unwrap());
            assert_eq!(store.api_key(&alias).await.unwrap(), None);
            assert!(store
                .delete_api_key(DEFAULT_ACCOUNT, "ACCA22")
                .await
                .unwrap());
            assert!(!store
                .delete_api_key(DEFAULT_ACCOUNT, "ACCA22")
                .await
                .unwrap());
        }
    }
}
