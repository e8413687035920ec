//! The server's part of Custom Model Import: copying a model's GGUF from an S3-compatible
//! store (the AWS SDK's S3 client) or a local path into `<data_dir>/imported-models/`, hashing it
//! as it goes, and making lazily loaded engines for imported models.

use crate::engines::imported_engine;
use crate::lazy::Budget;
use crate::lazy::LazyEngine;
use crate::Config;
use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use outcrop_engine::Engine;
use outcrop_service::imports::{Fetched, ModelHost};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Host {
    config: Config,
    budget: Arc<Budget>,
    /// Threads per model unless configured.
    share: u32,
    dir: PathBuf,
    s3: Option<aws_sdk_s3::Client>,
    made: Mutex<Vec<(Arc<dyn Engine>, LazyEngine)>>,
}

/// The S3 client for an S3-compatible endpoint.
pub fn s3_client(
    endpoint: &str,
    region: Option<&str>,
    access_key_id: Option<&str>,
    secret_access_key: Option<&str>,
) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.unwrap_or("us-east-1").to_owned()))
        .credentials_provider(Credentials::new(
            access_key_id.unwrap_or_default(),
            secret_access_key.unwrap_or_default(),
            None,
            None,
            "outcrop-config",
        ))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

impl Host {
    /// Imports read S3 through `[model_import]`'s endpoint, else `[invocation_logging]`'s.
    pub fn new(
        config: &Config,
        data_dir: &Path,
        budget: Arc<Budget>,
        share: u32,
    ) -> anyhow::Result<Self> {
        let i = &config.model_import;
        let l = &config.invocation_logging;
        let s3 = match (&i.s3_endpoint, &l.s3_endpoint) {
            (Some(endpoint), _) => Some(s3_client(
                endpoint,
                i.s3_region.as_deref(),
                i.s3_access_key_id.as_deref(),
                i.s3_secret_access_key.as_deref(),
            )),
            (None, Some(endpoint)) => Some(s3_client(
                endpoint,
                l.s3_region.as_deref(),
                l.s3_access_key_id.as_deref(),
                l.s3_secret_access_key.as_deref(),
            )),
            (None, None) => None,
        };
        Ok(Host {
            config: config.clone(),
            budget,
            share,
            dir: data_dir.join("imported-models"),
            s3,
            made: Mutex::new(Vec::new()),
        })
    }

    /// Unloads every imported model's engine (at shutdown).
    pub async fn stop(&self) {
        let made: Vec<LazyEngine> = self
            .made
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .map(|(_, lazy)| lazy)
            .collect();
        for lazy in made {
            lazy.stop().await;
        }
    }

    async fn fetch_s3(&self, uri: &str, dest: &Path) -> Result<Fetched, String> {
        let Some(client) = &self.s3 else {
            return Err(
                "This server has no S3 endpoint: set [model_import] s3_endpoint in its config, or import from a file:// path."
                    .into(),
            );
        };
        let rest = uri.trim_start_matches("s3://");
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let key = if key.ends_with(".gguf") {
            key.to_owned()
        } else {
            one_gguf(client, bucket, key).await?
        };
        let object = client
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| format!("s3://{bucket}/{key} could not be read: {}", s3_reason(&e)))?;
        let total = object.content_length().and_then(|n| u64::try_from(n).ok());
        let mut body = object.body;
        let mut copy = Copy::create(dest, uri, total).await?;
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| format!("Reading s3://{bucket}/{key} failed: {e}"))?;
            copy.write(&piece).await?;
        }
        copy.finish().await
    }

    async fn fetch_file(&self, uri: &str, dest: &Path) -> Result<Fetched, String> {
        let path = Path::new(uri.trim_start_matches("file://"));
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| format!("{} could not be opened: {e}", path.display()))?;
        let total = file.metadata().await.ok().map(|m| m.len());
        let mut copy = Copy::create(dest, uri, total).await?;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buffer)
                .await
                .map_err(|e| format!("Reading {} failed: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            copy.write(&buffer[..n]).await?;
        }
        copy.finish().await
    }
}

/// The one `.gguf` object under a prefix.
async fn one_gguf(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<String, String> {
    let listed = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .map_err(|e| {
            format!(
                "s3://{bucket}/{prefix} could not be listed: {}",
                s3_reason(&e)
            )
        })?;
    let ggufs: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .filter(|k| k.ends_with(".gguf"))
        .map(str::to_owned)
        .collect();
    match ggufs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "s3://{bucket}/{prefix} holds no .gguf file. Outcrop imports GGUF models: convert the model with llama.cpp's convert_hf_to_gguf.py and upload the .gguf."
        )),
        _ => Err(format!(
            "s3://{bucket}/{prefix} holds several .gguf files ({}): name one in s3Uri.",
            ggufs.join(", ")
        )),
    }
}

/// What an S3 error says: its code and message, else the SDK's account of it.
fn s3_reason<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    }
}

/// A file being written and hashed, with its progress logged at every tenth.
struct Copy {
    file: tokio::fs::File,
    hash: Sha256,
    written: u64,
    total: Option<u64>,
    logged_tenths: u64,
    source: String,
}

impl Copy {
    async fn create(dest: &Path, source: &str, total: Option<u64>) -> Result<Self, String> {
        let file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| format!("The model cache cannot be written: {e}"))?;
        tracing::info!(source, bytes = total, "model import: copying");
        Ok(Copy {
            file,
            hash: Sha256::new(),
            written: 0,
            total,
            logged_tenths: 0,
            source: source.to_owned(),
        })
    }

    async fn write(&mut self, piece: &[u8]) -> Result<(), String> {
        self.file
            .write_all(piece)
            .await
            .map_err(|e| format!("The model cache cannot be written: {e}"))?;
        self.hash.update(piece);
        self.written += piece.len() as u64;
        if let Some(total) = self.total.filter(|t| *t > 0) {
            let tenths = self.written * 10 / total;
            if tenths > self.logged_tenths {
                self.logged_tenths = tenths;
                tracing::info!(source = %self.source, percent = tenths * 10, bytes = self.written, "model import: copying");
            }
        }
        Ok(())
    }

    async fn finish(self) -> Result<Fetched, String> {
        self.file
            .sync_all()
            .await
            .map_err(|e| format!("The model cache cannot be written: {e}"))?;
        Ok(Fetched {
            size_bytes: self.written,
            sha256: hex::encode(self.hash.finalize()),
        })
    }
}

#[async_trait]
impl ModelHost for Host {
    fn import_dir(&self) -> PathBuf {
        self.dir.clone()
    }

    async fn fetch(&self, source: &str, dest: &Path) -> Result<Fetched, String> {
        if source.starts_with("s3://") {
            self.fetch_s3(source, dest).await
        } else {
            self.fetch_file(source, dest).await
        }
    }

    fn engine(&self, name: &str, path: &Path) -> Result<Arc<dyn Engine>, String> {
        let lazy = imported_engine(&self.config, &self.budget, self.share, name, path)
            .map_err(|e| format!("{e:#}"))?;
        let engine = Arc::new(lazy.clone()) as Arc<dyn Engine>;
        self.made
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((engine.clone(), lazy));
        Ok(engine)
    }

    async fn release(&self, engine: Arc<dyn Engine>) {
        let lazy = {
            let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
            let at = made.iter().position(|(e, _)| Arc::ptr_eq(e, &engine));
            at.map(|i| made.remove(i).1)
        };
        if let Some(lazy) = lazy {
            lazy.stop().await;
        }
    }
}
