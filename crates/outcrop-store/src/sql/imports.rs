//! Custom Model Import's jobs and models in SQL: one JSON document per row.

use crate::{ImportJobRecord, ImportedModelRecord, StoreError};
use serde::de::DeserializeOwned;
use sqlx::AnyPool;
use sqlx::Row;

fn document<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialize")
}

/// Rows whose document no longer parses are skipped (and logged), never fatal.
fn parse_all<T: DeserializeOwned>(rows: Vec<sqlx::any::AnyRow>, table: &str) -> Vec<T> {
    rows.iter()
        .filter_map(|r| {
            let text: String = r.get(0);
            serde_json::from_str(&text)
                .map_err(|e| tracing::error!(table, error = %e, "unreadable record skipped"))
                .ok()
        })
        .collect()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub(super) async fn create_job(pool: &AnyPool, job: &ImportJobRecord) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO model_import_jobs (account_id, job_id, job_name, created_at, document)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&job.account_id)
    .bind(&job.job_id)
    .bind(&job.job_name)
    .bind(&job.created_at)
    .bind(document(job))
    .execute(pool)
    .await;
    match done {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn update_job(pool: &AnyPool, job: &ImportJobRecord) -> Result<(), StoreError> {
    sqlx::query("UPDATE model_import_jobs SET document = $1 WHERE account_id = $2 AND job_id = $3")
        .bind(document(job))
        .bind(&job.account_id)
        .bind(&job.job_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn jobs(
    pool: &AnyPool,
    account_id: Option<&str>,
) -> Result<Vec<ImportJobRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT document FROM model_import_jobs WHERE $1 IS NULL OR account_id = $2
         ORDER BY created_at, job_id",
    )
    .bind(account_id)
    .bind(account_id)
    .fetch_all(pool)
    .await?;
    Ok(parse_all(rows, "model_import_jobs"))
}

pub(super) async fn complete(
    pool: &AnyPool,
    job: &ImportJobRecord,
    model: &ImportedModelRecord,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO imported_models (account_id, model_id, model_name, created_at, document)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&model.account_id)
    .bind(&model.model_id)
    .bind(&model.model_name)
    .bind(&model.created_at)
    .bind(document(model))
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    sqlx::query("UPDATE model_import_jobs SET document = $1 WHERE account_id = $2 AND job_id = $3")
        .bind(document(job))
        .bind(&job.account_id)
        .bind(&job.job_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn models(
    pool: &AnyPool,
    account_id: &str,
) -> Result<Vec<ImportedModelRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT document FROM imported_models WHERE account_id = $1 ORDER BY created_at, model_id",
    )
    .bind(account_id)
    .fetch_all(pool)
    .await?;
    Ok(parse_all(rows, "imported_models"))
}

pub(super) async fn delete_model(
    pool: &AnyPool,
    account_id: &str,
    model_id: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM imported_models WHERE account_id = $1 AND model_id = $2")
        .bind(account_id)
        .bind(model_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use crate::sql::test_engines;
    use crate::{ImportJobRecord, ImportStatus, ImportedModelRecord, Store};

    fn job(id: &str, name: &str) -> ImportJobRecord {
        ImportJobRecord {
            account_id: "111122223333".into(),
            job_id: id.into(),
            job_name: name.into(),
            region: "us-east-1".into(),
            imported_model_name: format!("{name}-model"),
            role_arn: "arn:aws:iam::111122223333:role/import".into(),
            source_uri: "s3://bucket/model.gguf".into(),
            status: ImportStatus::InProgress,
            failure_message: None,
            created_at: format!("2026-12-06T00:00:0{}Z", id.len() % 10),
            modified_at: "2026-12-06T00:00:00Z".into(),
            ended_at: None,
            model_id: None,
        }
    }

    fn model(job: &ImportJobRecord, id: &str) -> ImportedModelRecord {
        ImportedModelRecord {
            account_id: job.account_id.clone(),
            model_id: id.into(),
            model_name: job.imported_model_name.clone(),
            region: job.region.clone(),
            job_id: job.job_id.clone(),
            job_name: job.job_name.clone(),
            source_uri: job.source_uri.clone(),
            created_at: "2026-12-06T00:01:00Z".into(),
            architecture: "llama".into(),
            context_tokens: Some(8192),
            instruct: true,
            path: "/models/imported/x.gguf".into(),
            size_bytes: 10,
            sha256: "00".into(),
        }
    }

    #[tokio::test]
    async fn jobs_and_models_round_trip_with_unique_names() {
        for engine in test_engines::each().await {
            let store = engine.open().await;
            let mut first = job("aaaaaaaaaaaa", "first");
            assert!(store.create_import_job(&first).await.unwrap());
            assert!(!store
                .create_import_job(&job("bbbbbbbbbbbb", "first"))
                .await
                .unwrap());
            first.status = ImportStatus::Completed;
            first.model_id = Some("mmmmmmmmmmmm".into());
            let made = model(&first, "mmmmmmmmmmmm");
            assert!(store.complete_import(&first, &made).await.unwrap());
            assert_eq!(
                store.import_jobs(Some("111122223333")).await.unwrap(),
                vec![first.clone()]
            );
            assert_eq!(store.import_jobs(None).await.unwrap().len(), 1);
            assert!(store
                .import_jobs(Some("000000000000"))
                .await
                .unwrap()
                .is_empty());
            assert_eq!(
                store.imported_models("111122223333").await.unwrap(),
                vec![made.clone()]
            );

            // A second model of the same name is refused, and its job left as it was.
            let mut second = job("cccccccccccc", "second");
            second.imported_model_name = first.imported_model_name.clone();
            assert!(store.create_import_job(&second).await.unwrap());
            let mut finished = second.clone();
            finished.status = ImportStatus::Completed;
            assert!(!store
                .complete_import(&finished, &model(&second, "nnnnnnnnnnnn"))
                .await
                .unwrap());
            let jobs = store.import_jobs(Some("111122223333")).await.unwrap();
            assert_eq!(
                jobs.iter()
                    .find(|j| j.job_id == second.job_id)
                    .unwrap()
                    .status,
                ImportStatus::InProgress
            );

            assert!(store
                .delete_imported_model("111122223333", "mmmmmmmmmmmm")
                .await
                .unwrap());
            assert!(!store
                .delete_imported_model("111122223333", "mmmmmmmmmmmm")
                .await
                .unwrap());
            assert!(store
                .imported_models("111122223333")
                .await
                .unwrap()
                .is_empty());
        }
    }
}
