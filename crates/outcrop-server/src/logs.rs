//! Delivery of model invocation logs: CloudWatch-style log groups as JSON lines under
//! `<data_dir>/cloudwatch/<group>/`, and S3 objects through the real S3 API (the AWS SDK) of
//! the S3-compatible endpoint in `[invocation_logging]`. Each record is kept in the store's
//! outbox before its invocation's answer ends; a background task delivers from there (a
//! failed delivery is counted in `InvocationLogDeliveryFailures` and tried again later, by any
//! server on the store), so a crash loses no record and an invocation never fails with its log.

use crate::Config;
use async_trait::async_trait;
use outcrop_service::{Destinations, LogShipper};
use outcrop_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Where S3 destinations are delivered.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvocationLoggingConfig {
    /// An S3-compatible endpoint, e.g. `http://127.0.0.1:9000`. Without one, S3 destinations
    /// count as failed deliveries.
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
}

/// A record waiting for delivery, as the store's outbox keeps it.
#[derive(Serialize, Deserialize)]
struct Job {
    s3: Option<(String, String)>,
    log_group: Option<String>,
    account_id: String,
    region: String,
    record: Value,
}

/// How long a server may take to deliver the records it leased before another may take them:
/// more than a batch's worst case (each record's three S3 tries take about 1.5 s).
const LEASE: Duration = Duration::from_secs(20);
const BATCH: i64 = 8;

/// Keeps each record in the store's outbox before the invocation's answer ends, and delivers
/// from the outbox in the background: a record is deleted once delivered, and one whose
/// delivery failed is tried again when its lease runs out, by this server or another.
pub struct Shipper {
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
}

impl Shipper {
    pub fn new(config: &Config, data_dir: &Path, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let s3 = config
            .invocation_logging
            .s3_endpoint
            .as_ref()
            .map(|endpoint| {
                let l = &config.invocation_logging;
                crate::imports::s3_client(
                    endpoint,
                    l.s3_region.as_deref(),
                    l.s3_access_key_id.as_deref(),
                    l.s3_secret_access_key.as_deref(),
                )
            });
        let wake = Arc::new(Notify::new());
        let delivery = Delivery {
            store: store.clone(),
            s3,
            cloudwatch: data_dir.join("cloudwatch"),
            owner: uuid::Uuid::new_v4().to_string(),
        };
        tokio::spawn(delivery.run(wake.clone()));
        Ok(Shipper { store, wake })
    }
}

#[async_trait]
impl LogShipper for Shipper {
    async fn ship(
        &self,
        destinations: Destinations,
        account_id: &str,
        region: &str,
        record: Value,
    ) {
        let job = Job {
            s3: destinations.s3,
            log_group: destinations.log_group,
            account_id: account_id.to_owned(),
            region: region.to_owned(),
            record,
        };
        let text = serde_json::to_string(&job).expect("a job serializes");
        match self.store.enqueue_invocation_log(&text).await {
            Ok(()) => self.wake.notify_one(),
            Err(e) => {
                metrics::counter!("InvocationLogDeliveryFailures", "destination" => "outbox")
                    .increment(1);
                tracing::warn!(error = %e, "invocation log record could not be kept; dropped");
            }
        }
    }
}

struct Delivery {
    store: Arc<dyn Store>,
    s3: Option<aws_sdk_s3::Client>,
    cloudwatch: PathBuf,
    /// This server's name on its leases.
    owner: String,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Delivery {
    /// Leases what waits (woken by a new record, or every second for records left by other
    /// servers or earlier runs) and delivers it.
    async fn run(self, wake: Arc<Notify>) {
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
            loop {
                let now = now_ms();
                let leased = self
                    .store
                    .lease_invocation_logs(&self.owner, now, now + LEASE.as_millis() as i64, BATCH)
                    .await;
                let jobs = match leased {
                    Ok(jobs) if !jobs.is_empty() => jobs,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read the invocation log outbox");
                        break;
                    }
                };
                for (id, text) in jobs {
                    let done = match serde_json::from_str::<Job>(&text) {
                        Ok(job) => self.deliver(&job).await,
                        Err(e) => {
                            tracing::error!(error = %e, id, "unreadable invocation log record dropped");
                            true
                        }
                    };
                    if done {
                        if let Err(e) = self.store.delete_invocation_log(id).await {
                            tracing::warn!(error = %e, id, "could not clear a delivered log record");
                        }
                    }
                }
            }
        }
    }

    /// Delivers one record to its destinations; `false` to try again later. A log group is
    /// written once (a record is not appended twice); S3 is tried three times, backing off.
    async fn deliver(&self, job: &Job) -> bool {
        if let Some(group) = &job.log_group {
            if let Err(e) = append_line(&self.cloudwatch, group, &job.record) {
                metrics::counter!("InvocationLogDeliveryFailures", "destination" => "cloudwatch")
                    .increment(1);
                tracing::warn!(error = %e, group, "could not write the invocation log");
            }
        }
        let Some((bucket, prefix)) = &job.s3 else {
            return true;
        };
        let Some(client) = &self.s3 else {
            metrics::counter!("InvocationLogDeliveryFailures", "destination" => "s3").increment(1);
            tracing::warn!(
                bucket,
                "invocation logging names S3, but [invocation_logging] s3_endpoint is not set"
            );
            return true;
        };
        let key = object_key(prefix, &job.account_id, &job.region);
        let body = job.record.to_string().into_bytes();
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=3 {
            let put = client
                .put_object()
                .bucket(bucket)
                .key(&key)
                .content_type("application/json")
                .body(body.clone().into())
                .send()
                .await;
            match put {
                Ok(_) => return true,
                Err(e) => {
                    metrics::counter!("InvocationLogDeliveryFailures", "destination" => "s3")
                        .increment(1);
                    tracing::warn!(error = %aws_sdk_s3::error::DisplayErrorContext(&e), attempt, bucket, key, "could not deliver the invocation log");
                    if attempt < 3 {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
        false
    }
}

/// Bedrock's layout: `{prefix}/AWSLogs/{account}/BedrockModelInvocationLogs/{region}/YYYY/MM/DD/HH/…`.
fn object_key(prefix: &str, account: &str, region: &str) -> String {
    let now = chrono::Utc::now();
    let prefix = prefix.trim_matches('/');
    let head = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    format!(
        "{head}AWSLogs/{account}/BedrockModelInvocationLogs/{region}/{}/{}_{}.json",
        now.format("%Y/%m/%d/%H"),
        now.format("%Y%m%dT%H%M%S%3fZ"),
        uuid::Uuid::new_v4().simple()
    )
}

/// Appends the record as one JSON line to the log group's file.
fn append_line(root: &Path, group: &str, record: &Value) -> std::io::Result<()> {
    let dir = root.join(group.trim_start_matches('/'));
    std::fs::create_dir_all(&dir)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("invocations.jsonl"))?;
    writeln!(file, "{record}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_bedrock_layout() {
        let k = object_key("logs/", "000000000000", "us-east-1");
        assert!(
            k.starts_with("logs/AWSLogs/000000000000/BedrockModelInvocationLogs/us-east-1/"),
            "{k}"
        );
        assert!(object_key("", "1", "r").starts_with("AWSLogs/1/"));
    }

    #[test]
    fn log_groups_are_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        append_line(dir.path(), "/aws/bedrock/x", &serde_json::json!({"a": 1})).unwrap();
        append_line(dir.path(), "/aws/bedrock/x", &serde_json::json!({"a": 2})).unwrap();
        let text =
            std::fs::read_to_string(dir.path().join("aws/bedrock/x/invocations.jsonl")).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n");
    }
}
