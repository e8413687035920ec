//! The usage ledger: every authenticated runtime call (success, error or throttle) becomes one
//! durable record with its tokens, latency, status and exact cost. Non-streaming calls are
//! recorded before their response is returned; streams when they end (before their last
//! frame), or when the client goes away (the tokens generated until then).

use crate::{ApiError, ApiState};
use outcrop_store::UsageRecord;
use outcrop_types::Usage;
use std::sync::Arc;
use std::time::Instant;

/// Who made a runtime call and what it was: known once the request is authenticated.
#[derive(Debug, Clone)]
pub struct Call {
    pub request_id: String,
    pub account_id: String,
    pub principal_arn: String,
    pub operation: &'static str,
    /// The region of the request's credential scope.
    pub region: String,
    /// The model identifier as sent (used when the call failed before it was resolved).
    pub identifier: String,
    pub started: Instant,
}

/// What a handler reports about a finished non-streaming call (a response extension).
#[derive(Debug, Clone)]
pub struct Metered {
    pub model_id: String,
    pub usage: Usage,
    /// The response body, for invocation logging (`Null` when it is not logged, e.g.
    /// CountTokens).
    pub output: serde_json::Value,
}

/// The outcome of one call, as the ledger records it.
pub struct Outcome<'a> {
    pub model_id: &'a str,
    pub usage: Usage,
    pub first_byte_ms: Option<u64>,
    pub status: u16,
    pub error_code: Option<&'a str>,
}

/// Writes the record; a failing ledger is logged, never shown to the client.
pub async fn record(state: &ApiState, call: &Call, outcome: Outcome<'_>) {
    tracing::debug!(
        model = outcome.model_id,
        status = outcome.status,
        "recording usage"
    );
    let (input_price, output_price) = state
        .catalog
        .get(outcome.model_id)
        .map(|e| (e.input_price_per_1k.clone(), e.output_price_per_1k.clone()))
        .unwrap_or_else(|| ("0".into(), "0".into()));
    let cost = outcrop_store::cost(
        outcome.usage.input_tokens,
        outcome.usage.output_tokens,
        &input_price,
        &output_price,
    );
    count(&outcome, call.started.elapsed().as_millis() as f64);
    let record = UsageRecord {
        request_id: call.request_id.clone(),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        account_id: call.account_id.clone(),
        principal_arn: call.principal_arn.clone(),
        model_id: outcome.model_id.to_owned(),
        operation: call.operation.to_owned(),
        input_tokens: outcome.usage.input_tokens,
        output_tokens: outcome.usage.output_tokens,
        latency_ms: call.started.elapsed().as_millis() as u64,
        first_byte_ms: outcome.first_byte_ms,
        status: outcome.status,
        error_code: outcome.error_code.map(str::to_owned),
        input_price_per_1k: input_price,
        output_price_per_1k: output_price,
        cost_usd: cost.to_string(),
    };
    if let Err(e) = state.store.record_usage(&record).await {
        tracing::error!(error = %e, request_id = %call.request_id, "could not write the usage record");
    }
}

/// Bedrock's CloudWatch runtime metrics, labelled by model id (the `metrics` facade: exported
/// by whatever recorder the server installed, e.g. Prometheus at `/metrics`).
fn count(o: &Outcome<'_>, latency_ms: f64) {
    let model = o.model_id.to_owned();
    let outcome = match o.status {
        200..=299 => "Invocations",
        429 => "InvocationThrottles",
        400..=499 => "InvocationClientErrors",
        _ => "InvocationServerErrors",
    };
    metrics::counter!(outcome, "model_id" => model.clone()).increment(1);
    if o.status < 300 {
        metrics::histogram!("InvocationLatency", "model_id" => model.clone()).record(latency_ms);
    }
    metrics::counter!("InputTokenCount", "model_id" => model.clone())
        .increment(u64::from(o.usage.input_tokens));
    metrics::counter!("OutputTokenCount", "model_id" => model.clone())
        .increment(u64::from(o.usage.output_tokens));
    if let Some(ms) = o.first_byte_ms {
        metrics::histogram!("TimeToFirstToken", "model_id" => model).record(ms as f64);
    }
}

/// The model id a call is billed under: the catalog id when the identifier resolves.
pub fn billed_model(state: &ApiState, identifier: &str) -> String {
    crate::runtime_entry(state, identifier)
        .map(|(e, _)| e.id.clone())
        .unwrap_or_else(|_| identifier.to_owned())
}

/// Records a call that ended in an error before any response body.
pub async fn record_error(state: &ApiState, call: &Call, error: &ApiError) {
    let (status, code, _, _) = error.wire();
    let model_id = billed_model(state, &call.identifier);
    record(
        state,
        call,
        Outcome {
            model_id: &model_id,
            usage: Usage::default(),
            first_byte_ms: None,
            status: status.as_u16(),
            error_code: Some(code),
        },
    )
    .await;
}

/// What a stream needs to record itself when it ends.
#[derive(Clone)]
pub struct StreamLedger {
    pub state: Arc<ApiState>,
    pub call: Call,
    pub model_id: String,
    /// The quota reservation, settled with the tokens the stream used.
    pub permit: Option<crate::quota::Permit>,
    /// The request body, for invocation logging.
    pub input_body: bytes::Bytes,
}
