//! Delivery of model invocation logs: CloudWatch-style log groups as JSON lines under
//! `<data_dir>/cloudwatch/<group>/`, and S3 objects through the real S3 API (the AWS SDK) of
//! the S3-compatible endpoint in `[invocation_logging]`. A background task delivers; failures
//! are retried (three tries, backing off) and counted (`InvocationLogDeliveryFailures`), and an
//! invocation never waits for or fails with its log.

use crate::Config;
use outcrop_service::{Destinations, LogShipper};
use serde::Deserialize;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

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

struct Job {
    destinations: Destinations,
    account_id: String,
    region: String,
    record: Value,
}

pub struct Shipper {
    jobs: mpsc::Sender<Job>,
}

impl Shipper {
    pub fn new(config: &Config, data_dir: &Path) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(10_000);
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
        tokio::spawn(deliver(rx, s3, data_dir.join("cloudwatch")));
        Ok(Shipper { jobs: tx })
    }
}

impl LogShipper for Shipper {
    fn ship(&self, destinations: Destinations, account_id: &str, region: &str, record: Value) {
        let job = Job {
            destinations,
            account_id: account_id.to_owned(),
            region: region.to_owned(),
            record,
        };
        if self.jobs.try_send(job).is_err() {
            metrics::counter!("InvocationLogDeliveryFailures", "destination" => "queue")
                .increment(1);
            tracing::warn!("invocation log queue full; record dropped");
        }
    }
}

async fn deliver(
    mut jobs: mpsc::Receiver<Job>,
    s3: Option<aws_sdk_s3::Client>,
    cloudwatch: PathBuf,
) {
    while let Some(job) = jobs.recv().await {
        if let Some(group) = &job.destinations.log_group {
            if let Err(e) = append_line(&cloudwatch, group, &job.record) {
                metrics::counter!("InvocationLogDeliveryFailures", "destination" => "cloudwatch")
                    .increment(1);
                tracing::warn!(error = %e, group, "could not write the invocation log");
            }
        }
        if let Some((bucket, prefix)) = &job.destinations.s3 {
            let Some(client) = &s3 else {
                metrics::counter!("InvocationLogDeliveryFailures", "destination" => "s3")
                    .increment(1);
                tracing::warn!(
                    bucket,
                    "invocation logging names S3, but [invocation_logging] s3_endpoint is not set"
                );
                continue;
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
                    Ok(_) => break,
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
        }
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
