//! Model invocation logging, as Bedrock does it: the account's `LoggingConfig`
//! (Put/Get/DeleteModelInvocationLoggingConfiguration) and one `ModelInvocationLog` record per
//! invocation, handed to the server's [`LogShipper`] for delivery to S3 and/or CloudWatch-style
//! log groups. Delivery happens in the background and never fails or delays an invocation.

use crate::error::not_null;
use crate::ledger::Call;
use crate::{ApiError, Principal, Service};
use serde_json::{json, Value};

/// Where a record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinations {
    /// `(bucket, key prefix)`.
    pub s3: Option<(String, String)>,
    /// The CloudWatch log group name.
    pub log_group: Option<String>,
}

/// Delivers invocation log records; implemented by the server. `ship` returns once the record
/// is kept durably; delivery happens later.
#[async_trait::async_trait]
pub trait LogShipper: Send + Sync {
    async fn ship(&self, destinations: Destinations, account_id: &str, region: &str, record: Value);
}

/// A validated LoggingConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    pub destinations: Destinations,
    pub text: bool,
    pub embedding: bool,
}

/// Checks a `loggingConfig` document (the shape Bedrock takes and stores).
pub fn parse_config(raw: &Value) -> Result<LoggingConfig, ApiError> {
    let cfg = raw
        .as_object()
        .ok_or_else(|| ApiError::Validation("loggingConfig must be an object.".into()))?;
    let s3 = match cfg.get("s3Config") {
        None => None,
        Some(s3) => {
            let bucket = s3
                .get("bucketName")
                .and_then(Value::as_str)
                .filter(|b| !b.is_empty())
                .ok_or_else(|| not_null("loggingConfig.s3Config.bucketName"))?;
            let prefix = s3
                .get("keyPrefix")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Some((bucket.to_owned(), prefix.to_owned()))
        }
    };
    let log_group = match cfg.get("cloudWatchConfig") {
        None => None,
        Some(cw) => {
            let group = cw
                .get("logGroupName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())
                .ok_or_else(|| not_null("loggingConfig.cloudWatchConfig.logGroupName"))?;
            cw.get("roleArn")
                .and_then(Value::as_str)
                .ok_or_else(|| not_null("loggingConfig.cloudWatchConfig.roleArn"))?;
            let safe = group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-/.#".contains(c));
            if !safe || group.contains("..") {
                return Err(ApiError::Validation(format!(
                    "1 validation error detected: Value '{group}' at 'loggingConfig.cloudWatchConfig.logGroupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_/.#-]+"
                )));
            }
            Some(group.to_owned())
        }
    };
    if s3.is_none() && log_group.is_none() {
        return Err(ApiError::Validation(
            "The logging configuration must name an S3 or a CloudWatch destination.".into(),
        ));
    }
    let flag = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(true);
    Ok(LoggingConfig {
        destinations: Destinations { s3, log_group },
        text: flag("textDataDeliveryEnabled"),
        embedding: flag("embeddingDataDeliveryEnabled"),
    })
}

/// Sets the account's configuration: `raw` is checked, then stored as given.
pub async fn put_config(
    state: &Service,
    principal: &Principal,
    raw: &Value,
) -> Result<(), ApiError> {
    parse_config(raw)?;
    state
        .store
        .put_logging_config(&principal.account_id, &raw.to_string())
        .await?;
    Ok(())
}

/// The account's configuration document, if one is set.
pub async fn get_config(state: &Service, principal: &Principal) -> Result<Option<Value>, ApiError> {
    Ok(state
        .store
        .logging_config(&principal.account_id)
        .await?
        .map(|text| serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)))
}

/// Removes the account's configuration (no error when there is none).
pub async fn delete_config(state: &Service, principal: &Principal) -> Result<(), ApiError> {
    state
        .store
        .delete_logging_config(&principal.account_id)
        .await?;
    Ok(())
}

/// One finished invocation, as logging sees it.
pub struct Invocation<'a> {
    pub model_id: &'a str,
    pub embedding: bool,
    pub input_body: &'a [u8],
    pub input_tokens: u32,
    /// Input tokens read from and written to the prompt cache.
    pub cache_tokens: (u32, u32),
    pub output_body: Value,
    pub output_tokens: u32,
}

fn body_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(bytes)))
}

/// Builds and ships the record when the account logs invocations of this kind.
pub async fn log(state: &Service, call: &Call, inv: Invocation<'_>) {
    let Some(shipper) = &state.log_shipper else {
        return;
    };
    let config = match state.store.logging_config(&call.account_id).await {
        Ok(Some(text)) => serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| parse_config(&v).ok()),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "could not read the logging configuration");
            None
        }
    };
    let Some(config) = config else { return };
    if (inv.embedding && !config.embedding) || (!inv.embedding && !config.text) {
        return;
    }
    let record = json!({
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "accountId": call.account_id,
        "identity": { "arn": call.principal_arn },
        "region": call.region,
        "requestId": call.request_id,
        "operation": call.operation,
        "modelId": inv.model_id,
        "input": {
            "inputContentType": "application/json",
            "inputBodyJson": body_json(inv.input_body),
            "inputTokenCount": inv.input_tokens,
        },
        "output": {
            "outputContentType": "application/json",
            "outputBodyJson": inv.output_body,
            "outputTokenCount": inv.output_tokens,
        },
    });
    let mut record = record;
    if inv.cache_tokens != (0, 0) {
        record["input"]["cacheReadInputTokenCount"] = inv.cache_tokens.0.into();
        record["input"]["cacheWriteInputTokenCount"] = inv.cache_tokens.1.into();
    }
    if let Some(m) = &call.request_metadata {
        record["requestMetadata"] = m.clone();
    }
    shipper
        .ship(config.destinations, &call.account_id, &call.region, record)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs() {
        let c = parse_config(&json!({"s3Config": {"bucketName": "b", "keyPrefix": "p"}, "textDataDeliveryEnabled": true})).unwrap();
        assert_eq!(c.destinations.s3, Some(("b".into(), "p".into())));
        assert!(c.text && c.embedding);
        assert!(parse_config(&json!({"textDataDeliveryEnabled": true})).is_err());
        assert!(parse_config(
            &json!({"cloudWatchConfig": {"logGroupName": "../x", "roleArn": "r"}})
        )
        .is_err());
        assert!(
            parse_config(&json!({"cloudWatchConfig": {"logGroupName": "g"}})).is_err(),
            "roleArn is required"
        );
        let c = parse_config(&json!({"cloudWatchConfig": {"logGroupName": "/aws/bedrock/x", "roleArn": "r"}, "embeddingDataDeliveryEnabled": false})).unwrap();
        assert_eq!(c.destinations.log_group.as_deref(), Some("/aws/bedrock/x"));
        assert!(!c.embedding);
    }
}
