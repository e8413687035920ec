//! Custom Model Import: jobs that copy a GGUF from S3 or a local path into the model cache,
//! verify it and read its metadata; the models they make, invoked by their
//! `arn:aws:bedrock:REGION:ACCOUNT:imported-model/ID`, each on an engine that loads on first
//! use.
//!
//! The copying and the engines are the server's ([`ModelHost`]); the records are the store's.
//! Jobs still in progress when the server stopped run again at its next start.

use crate::{ApiError, Principal, Resolved, Service};
use async_trait::async_trait;
use outcrop_engine::Engine;
use outcrop_models::CatalogEntry;
pub use outcrop_store::{ImportJobRecord, ImportStatus, ImportedModelRecord};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The catalog `format` of imported models: BedrockCompletion, OpenAI completion and chat
/// completion bodies.
pub const IMPORTED_FORMAT: &str = "imported";

/// A file copied into the model cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub size_bytes: u64,
    /// Hex SHA-256, computed while copying.
    pub sha256: String,
}

/// What the server provides for imports.
#[async_trait]
pub trait ModelHost: Send + Sync {
    /// Where imported GGUF files are kept.
    fn import_dir(&self) -> PathBuf;
    /// Copies `source` (`s3://bucket/key-or-prefix` or `file:///path`) to `dest`, logging its
    /// progress. The error is shown to the client as the job's failure message.
    async fn fetch(&self, source: &str, dest: &Path) -> Result<Fetched, String>;
    /// An engine for the GGUF at `path` that loads on its first request.
    fn engine(&self, name: &str, path: &Path) -> Result<Arc<dyn Engine>, String>;
    /// Unloads an engine made by [`ModelHost::engine`].
    async fn release(&self, engine: Arc<dyn Engine>);
}

/// A validated CreateModelImportJob request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImport {
    pub job_name: String,
    pub model_name: String,
    pub role_arn: String,
    pub source_uri: String,
}

/// An imported model ready to invoke: its catalog entry (the ARN is its id) and its engine.
pub struct Imported {
    pub entry: CatalogEntry,
    pub engine: Arc<dyn Engine>,
    pub record: ImportedModelRecord,
}

impl Imported {
    pub fn resolved(&self) -> Resolved<'_> {
        Resolved {
            entry: &self.entry,
            geography: None,
            engine: Some(self.engine.as_ref()),
        }
    }
}

/// The engines of imported models that have been invoked, by account and model id.
#[derive(Default)]
pub struct Registry {
    loaded: Mutex<HashMap<(String, String), Arc<Imported>>>,
}

impl Registry {
    fn get(&self, account_id: &str, model_id: &str) -> Option<Arc<Imported>> {
        self.lock()
            .get(&(account_id.to_owned(), model_id.to_owned()))
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Imported>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every imported model with an engine, for health and metrics.
    pub fn all(&self) -> Vec<Arc<Imported>> {
        self.lock().values().cloned().collect()
    }
}

/// `arn:aws:bedrock:REGION:ACCOUNT:model-import-job/ID`.
pub fn job_arn(job: &ImportJobRecord) -> String {
    job_arn_in(&job.region, &job.account_id, &job.job_id)
}

pub fn job_arn_in(region: &str, account_id: &str, job_id: &str) -> String {
    format!("arn:aws:bedrock:{region}:{account_id}:model-import-job/{job_id}")
}

/// `arn:aws:bedrock:REGION:ACCOUNT:imported-model/ID`.
pub fn model_arn(region: &str, account_id: &str, model_id: &str) -> String {
    format!("arn:aws:bedrock:{region}:{account_id}:imported-model/{model_id}")
}

/// The account and id in an imported-model ARN (`None` for anything else).
pub fn parse_model_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:aws")?;
    let mut parts = rest.splitn(6, ':');
    let (partition_tail, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let id = resource.strip_prefix("imported-model/")?;
    (partition_tail.is_empty() || partition_tail.starts_with('-'))
        .then_some(())
        .filter(|_| service == "bedrock" && !region.is_empty() && parts.next().is_none())
        .filter(|_| account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .filter(|_| is_resource_id(id))
        .map(|_| (account, id))
}

/// 12 lowercase letters and digits: the id part of import-job and imported-model ARNs.
fn is_resource_id(id: &str) -> bool {
    id.len() == 12
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn new_resource_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(12)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn store_error(e: outcrop_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "store failure");
    ApiError::Internal
}

fn host(state: &Service) -> Result<&Arc<dyn ModelHost>, ApiError> {
    state.model_host.as_ref().ok_or_else(|| {
        ApiError::Validation("Custom Model Import is not available on this server.".into())
    })
}

/// The source URIs a job may read: an S3 object or prefix, or an absolute local path.
fn check_source(uri: &str) -> Result<(), ApiError> {
    let ok = match (uri.strip_prefix("s3://"), uri.strip_prefix("file://")) {
        (Some(rest), _) => rest
            .split_once('/')
            .map_or(rest, |(bucket, _)| bucket)
            .len()
            .checked_sub(3)
            .is_some(),
        (_, Some(path)) => path.starts_with('/') && !path.split('/').any(|p| p == ".."),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "The model data source {uri} is not supported: give s3://BUCKET/KEY (a .gguf object, or a prefix holding one) or file:///PATH."
        )))
    }
}

/// Starts an import job; returns its record (status `InProgress`).
pub async fn create_job(
    state: &Arc<Service>,
    principal: &Principal,
    request: NewImport,
) -> Result<ImportJobRecord, ApiError> {
    host(state)?;
    check_source(&request.source_uri)?;
    let store = &state.store;
    let account = &principal.account_id;
    let jobs = store
        .import_jobs(Some(account))
        .await
        .map_err(store_error)?;
    let models = store.imported_models(account).await.map_err(store_error)?;
    let name_taken = models.iter().any(|m| m.model_name == request.model_name)
        || jobs.iter().any(|j| {
            j.status == ImportStatus::InProgress && j.imported_model_name == request.model_name
        });
    if name_taken {
        return Err(ApiError::Conflict(format!(
            "An imported model named {} already exists. Choose another importedModelName, or delete the model first.",
            request.model_name
        )));
    }
    let created = now();
    let job = ImportJobRecord {
        account_id: account.clone(),
        job_id: new_resource_id(),
        job_name: request.job_name,
        region: principal.region.clone(),
        imported_model_name: request.model_name,
        role_arn: request.role_arn,
        source_uri: request.source_uri,
        status: ImportStatus::InProgress,
        failure_message: None,
        created_at: created.clone(),
        modified_at: created,
        ended_at: None,
        model_id: None,
    };
    if !store.create_import_job(&job).await.map_err(store_error)? {
        return Err(ApiError::Conflict(format!(
            "A model import job named {} already exists. Choose another jobName.",
            job.job_name
        )));
    }
    tracing::info!(job = %job_arn(&job), source = %job.source_uri, "model import job started");
    tokio::spawn(run_job(state.clone(), job.clone()));
    Ok(job)
}

/// Runs again the jobs that were in progress when the server stopped.
pub async fn resume_jobs(state: &Arc<Service>) -> Result<(), outcrop_store::StoreError> {
    if state.model_host.is_none() {
        return Ok(());
    }
    for job in state.store.import_jobs(None).await? {
        if job.status == ImportStatus::InProgress {
            tracing::info!(job = %job_arn(&job), "resuming a model import job");
            tokio::spawn(run_job(state.clone(), job));
        }
    }
    Ok(())
}

/// Copies, verifies and records one job's model; the job ends `Completed` or `Failed`.
async fn run_job(state: Arc<Service>, mut job: ImportJobRecord) {
    let Ok(host) = host(&state).cloned() else {
        return;
    };
    let model_id = new_resource_id();
    let dir = host.import_dir().join(&job.account_id);
    let path = dir.join(format!("{model_id}.gguf"));
    let outcome = import_file(host.as_ref(), &job.source_uri, &dir, &path).await;
    let ended = now();
    job.modified_at = ended.clone();
    job.ended_at = Some(ended.clone());
    let failure = match outcome {
        Ok((fetched, description)) => {
            job.status = ImportStatus::Completed;
            job.model_id = Some(model_id.clone());
            let model = ImportedModelRecord {
                account_id: job.account_id.clone(),
                model_id: model_id.clone(),
                model_name: job.imported_model_name.clone(),
                region: job.region.clone(),
                job_id: job.job_id.clone(),
                job_name: job.job_name.clone(),
                source_uri: job.source_uri.clone(),
                created_at: ended,
                architecture: description.architecture,
                context_tokens: description.context,
                instruct: description.chat_template,
                path: path.display().to_string(),
                size_bytes: fetched.size_bytes,
                sha256: fetched.sha256,
            };
            match state.store.complete_import(&job, &model).await {
                Ok(true) => {
                    tracing::info!(job = %job_arn(&job), model = %model_arn(&job.region, &job.account_id, &model_id), bytes = model.size_bytes, "model imported");
                    return;
                }
                Ok(false) => format!(
                    "An imported model named {} was created while this job ran.",
                    job.imported_model_name
                ),
                Err(e) => {
                    tracing::error!(error = %e, "could not record an imported model");
                    "The imported model could not be recorded.".to_owned()
                }
            }
        }
        Err(message) => message,
    };
    let _ = tokio::fs::remove_file(&path).await;
    tracing::warn!(job = %job_arn(&job), reason = %failure, "model import job failed");
    job.status = ImportStatus::Failed;
    job.model_id = None;
    job.failure_message = Some(failure);
    if let Err(e) = state.store.update_import_job(&job).await {
        tracing::error!(error = %e, "could not record a failed import job");
    }
}

/// Fetches the source beside `path`, checks that it is a GGUF a model can be made from, and
/// renames it into place.
async fn import_file(
    host: &dyn ModelHost,
    source: &str,
    dir: &Path,
    path: &Path,
) -> Result<(Fetched, outcrop_models::Description), String> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("The model cache cannot be written: {e}"))?;
    let partial = path.with_extension("gguf.part");
    let fetched = match host.fetch(source, &partial).await {
        Ok(f) => f,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
    };
    let file = partial.clone();
    let described = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&file)?;
        outcrop_models::describe(std::io::BufReader::new(f))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    let description = match described {
        Ok(d) if !d.architecture.is_empty() => d,
        Ok(_) | Err(_) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(format!(
                "{source} is not a GGUF model file (its header or metadata could not be read). Import a .gguf file."
            ));
        }
    };
    tokio::fs::rename(&partial, path)
        .await
        .map_err(|e| format!("The model cache cannot be written: {e}"))?;
    Ok((fetched, description))
}

/// The account's job named by ARN or name, or Bedrock's ResourceNotFoundException.
pub async fn job(
    state: &Service,
    principal: &Principal,
    identifier: &str,
) -> Result<ImportJobRecord, ApiError> {
    let jobs = state
        .store
        .import_jobs(Some(&principal.account_id))
        .await
        .map_err(store_error)?;
    jobs.into_iter()
        .find(|j| j.job_name == identifier || job_arn(j) == identifier)
        .ok_or_else(|| {
            ApiError::ResourceNotFound(format!("Model import job {identifier} was not found."))
        })
}

pub async fn jobs(
    state: &Service,
    principal: &Principal,
) -> Result<Vec<ImportJobRecord>, ApiError> {
    state
        .store
        .import_jobs(Some(&principal.account_id))
        .await
        .map_err(store_error)
}

pub async fn models(
    state: &Service,
    principal: &Principal,
) -> Result<Vec<ImportedModelRecord>, ApiError> {
    state
        .store
        .imported_models(&principal.account_id)
        .await
        .map_err(store_error)
}

/// The account's imported model named by ARN or name, or ResourceNotFoundException.
pub async fn model(
    state: &Service,
    principal: &Principal,
    identifier: &str,
) -> Result<ImportedModelRecord, ApiError> {
    let by_arn = parse_model_arn(identifier);
    models(state, principal)
        .await?
        .into_iter()
        .find(|m| match by_arn {
            Some((account, id)) => m.account_id == account && m.model_id == id,
            None => m.model_name == identifier,
        })
        .ok_or_else(|| not_found(identifier))
}

fn not_found(identifier: &str) -> ApiError {
    ApiError::ResourceNotFound(format!(
        "Imported model {identifier} was not found. List the account's models with ListImportedModels."
    ))
}

/// Deletes an imported model: its record, its engine (unloaded) and its file.
pub async fn delete_model(
    state: &Service,
    principal: &Principal,
    identifier: &str,
) -> Result<(), ApiError> {
    let record = model(state, principal, identifier).await?;
    if !state
        .store
        .delete_imported_model(&record.account_id, &record.model_id)
        .await
        .map_err(store_error)?
    {
        return Err(not_found(identifier));
    }
    let loaded = state
        .imported
        .lock()
        .remove(&(record.account_id.clone(), record.model_id.clone()));
    if let (Some(loaded), Some(host)) = (loaded, state.model_host.as_ref()) {
        host.release(loaded.engine.clone()).await;
    }
    if let Err(e) = tokio::fs::remove_file(&record.path).await {
        tracing::warn!(path = %record.path, error = %e, "could not remove an imported model's file");
    }
    tracing::info!(model = %model_arn(&record.region, &record.account_id, &record.model_id), "imported model deleted");
    Ok(())
}

/// The catalog entry an imported model is served under.
fn entry(record: &ImportedModelRecord) -> CatalogEntry {
    let arn = model_arn(&record.region, &record.account_id, &record.model_id);
    serde_json::from_value(serde_json::json!({
        "id": arn,
        "name": record.model_name,
        "provider": "Imported",
        "format": IMPORTED_FORMAT,
        "backing_model": format!("imported/{}/{}", record.account_id, record.model_id),
        // Bedrock bills imported models by Custom Model Units over time, not per token.
        "input_price_per_1k": "0",
        "output_price_per_1k": "0",
        "service_tiers": {},
        "cache_tools": false,
        "converse": record.instruct,
    }))
    .expect("an imported model's catalog entry")
}

impl Service {
    /// The imported model a runtime identifier names (`None` when it is not an imported-model
    /// ARN), its engine made on first use. Another account's model is not found.
    pub async fn imported(
        &self,
        principal: &Principal,
        identifier: &str,
    ) -> Result<Option<Arc<Imported>>, ApiError> {
        let Some((account, id)) = parse_model_arn(identifier) else {
            return Ok(None);
        };
        if account != principal.account_id {
            return Err(not_found(identifier));
        }
        if let Some(loaded) = self.imported.get(account, id) {
            return Ok(Some(loaded));
        }
        let host = host(self)?;
        let record = model(self, principal, identifier).await?;
        let name = format!("imported-{}-{}", record.model_name, record.model_id);
        let engine = host
            .engine(&name, Path::new(&record.path))
            .map_err(|e| {
                tracing::error!(model = %identifier, error = %e, "imported model cannot be served");
                ApiError::ServiceUnavailable(
                    "The imported model cannot be loaded on this server. Check its file and the server's memory budget.".into(),
                )
            })?;
        let imported = Arc::new(Imported {
            entry: entry(&record),
            engine,
            record,
        });
        let mut loaded = self.imported.lock();
        let kept = loaded
            .entry((account.to_owned(), id.to_owned()))
            .or_insert(imported);
        Ok(Some(kept.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_model_arns() {
        assert_eq!(
            parse_model_arn("arn:aws:bedrock:us-east-1:111122223333:imported-model/abc123def456"),
            Some(("111122223333", "abc123def456"))
        );
        for bad in [
            "arn:aws:bedrock:us-east-1:111122223333:imported-model/ABC123DEF456",
            "arn:aws:bedrock:us-east-1:111122223333:imported-model/abc",
            "arn:aws:bedrock:us-east-1::imported-model/abc123def456",
            "arn:aws:bedrock:us-east-1:111122223333:custom-model/abc123def456",
            "arn:aws:s3:us-east-1:111122223333:imported-model/abc123def456",
            "arn:aws:bedrock:us-east-1:111122223333:imported-model/abc123def456:x",
            "anthropic.claude-v2",
        ] {
            assert_eq!(parse_model_arn(bad), None, "{bad}");
        }
        let id = new_resource_id();
        assert!(is_resource_id(&id), "{id}");
    }

    #[test]
    fn sources() {
        assert!(check_source("s3://bucket/models/a.gguf").is_ok());
        assert!(check_source("s3://bucket/models/").is_ok());
        assert!(check_source("file:///srv/models/a.gguf").is_ok());
        for bad in [
            "s3://ab",
            "file://relative/a.gguf",
            "file:///a/../etc/passwd",
            "https://x/a.gguf",
            "",
        ] {
            assert!(check_source(bad).is_err(), "{bad}");
        }
    }
}
