//! The usage ledger: every authenticated runtime call (success, error or throttle) becomes one
//! durable record with its tokens, latency, status and exact cost, written by its [`Meter`]:
//! exactly once, whether the call answers, fails, streams to its end or is cut short by a
//! client that went away. Non-streaming calls are recorded before their response is returned;
//! streams when they end (before their last frame).

use crate::logging::{self, Invocation};
use crate::{Permit, Service};
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
    /// The service tier the call asked for (`priority`, `flex`...); `None` is `default`.
    pub service_tier: Option<&'static str>,
    /// The call's request metadata, for its invocation log.
    pub request_metadata: Option<serde_json::Value>,
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
/// Writes the call's usage record; `false` when it could be made durable nowhere (the store
/// refused it and so did the spool).
async fn record(state: &Service, call: &Call, outcome: Outcome<'_>) -> bool {
    tracing::debug!(
        model = outcome.model_id,
        status = outcome.status,
        "recording usage"
    );
    let entry = state.catalog.get(outcome.model_id);
    // A tier's tokens cost the catalog price times the tier's factor.
    let factor = entry.and_then(|e| call.service_tier.and_then(|t| e.service_tiers.get(t)));
    let priced = |p: &str| match factor {
        Some(f) => outcrop_store::scaled_price(p, f),
        None => p.to_owned(),
    };
    let (input_price, output_price) = entry
        .map(|e| {
            (
                priced(&e.input_price_per_1k),
                priced(&e.output_price_per_1k),
            )
        })
        .unwrap_or_else(|| ("0".into(), "0".into()));
    let u = outcome.usage;
    let cache = entry.map_or_else(
        || outcrop_store::cache_cost(&[]),
        |e| {
            // A model without cache prices bills its cache tokens as input.
            let or_input =
                |p: &Option<String>| priced(p.as_deref().unwrap_or(&e.input_price_per_1k));
            let write = or_input(&e.cache_write_price_per_1k);
            let write_1h = e
                .cache_write_1h_price_per_1k
                .as_ref()
                .map_or_else(|| write.clone(), |p| priced(p));
            outcrop_store::cache_cost(&[
                (
                    u.cache_read_input_tokens,
                    &or_input(&e.cache_read_price_per_1k),
                ),
                (
                    u.cache_write_input_tokens - u.cache_write_1h_input_tokens,
                    &write,
                ),
                (u.cache_write_1h_input_tokens, &write_1h),
            ])
        },
    );
    let cost =
        outcrop_store::cost(u.input_tokens, u.output_tokens, &input_price, &output_price) + cache;
    let label = metric_label(&state.catalog, outcome.model_id);
    count(&outcome, label, call.started.elapsed().as_millis() as f64);
    let record = UsageRecord {
        request_id: call.request_id.clone(),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        account_id: call.account_id.clone(),
        principal_arn: call.principal_arn.clone(),
        model_id: outcome.model_id.to_owned(),
        operation: call.operation.to_owned(),
        input_tokens: outcome.usage.input_tokens,
        output_tokens: outcome.usage.output_tokens,
        cache_read_tokens: u.cache_read_input_tokens,
        cache_write_tokens: u.cache_write_input_tokens,
        latency_ms: call.started.elapsed().as_millis() as u64,
        first_byte_ms: outcome.first_byte_ms,
        status: outcome.status,
        error_code: outcome.error_code.map(str::to_owned),
        input_price_per_1k: input_price,
        output_price_per_1k: output_price,
        cost_usd: cost.to_string(),
    };
    let Err(e) = state.store.record_usage(&record).await else {
        return true;
    };
    match &state.spool {
        Some(spool) => match spool.append(&record).await {
            Ok(()) => {
                tracing::warn!(error = %e, request_id = %call.request_id, "the store refused a usage record; spooled to disk");
                true
            }
            Err(spooled) => {
                tracing::error!(error = %e, spool_error = %spooled, request_id = %call.request_id, "usage record lost: neither the store nor the spool took it");
                false
            }
        },
        None => {
            tracing::error!(error = %e, request_id = %call.request_id, "could not write the usage record");
            false
        }
    }
}

/// The `model_id` label of a call's metrics: its catalog id, or `unknown` for an identifier
/// that names no model, so that clients cannot create a series per made-up id.
fn metric_label(catalog: &outcrop_models::Catalog, model_id: &str) -> String {
    if catalog.get(model_id).is_some() {
        model_id.to_owned()
    } else {
        "unknown".to_owned()
    }
}

/// Bedrock's CloudWatch runtime metrics, labelled by model id (the `metrics` facade: exported
/// by whatever recorder the server installed, e.g. Prometheus at `/metrics`).
fn count(o: &Outcome<'_>, model: String, latency_ms: f64) {
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

/// How a call ended, as its [`Meter`] records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// The HTTP status the client saw (200 for a stream that ended well).
    pub status: u16,
    /// The AWS error code, for a call that failed.
    pub error_code: Option<&'static str>,
    pub usage: Usage,
    /// What was answered, for invocation logging (`None`: not logged, as for CountTokens).
    pub output: Option<serde_json::Value>,
}

/// A runtime call's one usage record, from authentication to its end. [`Meter::finish`]
/// writes it, settles the quota reservation and logs the invocation; a meter dropped without
/// finishing (its client went away) writes the usage seen so far, status 499.
pub struct Meter {
    service: Arc<Service>,
    call: Call,
    /// The model billed: the catalog id once resolved, else the identifier as sent.
    model_id: String,
    embedding: bool,
    permit: Option<Permit>,
    /// The call's place under its principal's concurrency cap, freed with the meter.
    running: Option<crate::concurrency::Running>,
    input_body: bytes::Bytes,
    /// Tokens seen so far (a stream counts as it goes).
    usage: Usage,
    first_byte_ms: Option<u64>,
    done: bool,
}

impl Meter {
    pub fn new(service: Arc<Service>, call: Call, input_body: bytes::Bytes) -> Self {
        let model_id = call.identifier.clone();
        Meter {
            service,
            call,
            model_id,
            embedding: false,
            permit: None,
            running: None,
            input_body,
            usage: Usage::default(),
            first_byte_ms: None,
            done: false,
        }
    }

    pub fn call(&self) -> &Call {
        &self.call
    }

    /// The call named this catalog model: it is billed and logged under its id.
    pub fn resolved(&mut self, entry: &outcrop_models::CatalogEntry) {
        self.model_id = entry.id.clone();
        self.embedding = self.service.is_embedding(&entry.id);
    }

    /// What the parsed call asked for: its service tier and request metadata.
    pub fn describe(
        &mut self,
        service_tier: Option<&'static str>,
        request_metadata: Option<serde_json::Value>,
    ) {
        self.call.service_tier = service_tier;
        self.call.request_metadata = request_metadata;
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The quota reservation, settled with the tokens used when the call ends.
    pub fn admitted(&mut self, permit: Permit) {
        self.permit = Some(permit);
    }

    /// Holds the call's place under its principal's concurrency cap until the call ends.
    pub fn holds(&mut self, running: crate::concurrency::Running) {
        self.running = Some(running);
    }

    /// Tokens used so far, recorded if the call is cut short.
    pub fn progress(&mut self, usage: Usage) {
        self.usage = usage;
    }

    /// The first byte of the answer was sent now.
    pub fn first_byte(&mut self) {
        self.first_byte_ms
            .get_or_insert_with(|| self.call.started.elapsed().as_millis() as u64);
    }

    pub fn first_byte_ms(&self) -> Option<u64> {
        self.first_byte_ms
    }

    /// Writes the call's record (and its invocation log for a success with output).
    /// Records the call; `false` when its usage record could be made durable nowhere, and the
    /// caller answers with an error instead of what it would have sent (an answer that is not
    /// billed is not given).
    pub async fn finish(mut self, ended: Ended) -> bool {
        self.done = true;
        self.settle(ended.usage);
        let outcome = Outcome {
            model_id: &self.model_id,
            usage: ended.usage,
            first_byte_ms: self.first_byte_ms,
            status: ended.status,
            error_code: ended.error_code,
        };
        let durable = record(&self.service, &self.call, outcome).await;
        if let (200, Some(output), true) = (ended.status, ended.output, durable) {
            let invocation = Invocation {
                model_id: &self.model_id,
                embedding: self.embedding,
                input_body: &self.input_body,
                input_tokens: ended.usage.input_tokens,
                cache_tokens: (
                    ended.usage.cache_read_input_tokens,
                    ended.usage.cache_write_input_tokens,
                ),
                output_body: output,
                output_tokens: ended.usage.output_tokens,
            };
            logging::log(&self.service, &self.call, invocation).await;
        }
        durable
    }

    fn settle(&self, usage: Usage) {
        if let Some(p) = &self.permit {
            // Cache reads do not count against tokens-per-minute quotas; writes do.
            p.settle(
                u64::from(usage.input_tokens)
                    + u64::from(usage.cache_write_input_tokens)
                    + u64::from(usage.output_tokens),
            );
        }
    }
}

impl Drop for Meter {
    /// A client that went away: record the tokens used until then.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.settle(self.usage);
        let (service, call, model_id) = (
            self.service.clone(),
            self.call.clone(),
            std::mem::take(&mut self.model_id),
        );
        let (usage, first_byte_ms) = (self.usage, self.first_byte_ms);
        let error_code = if call.operation.ends_with("Stream") {
            "ClientClosedStream"
        } else {
            "ClientClosedRequest"
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let outcome = Outcome {
                    model_id: &model_id,
                    usage,
                    first_byte_ms,
                    status: 499,
                    error_code: Some(error_code),
                };
                let _ = record(&service, &call, outcome).await;
            });
        } else {
            tracing::error!(request_id = %call.request_id, "no runtime to record a call cut short");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_catalog_ids_label_metrics() {
        let catalog =
            outcrop_models::Catalog::builtin_with(None, &std::collections::BTreeMap::new())
                .unwrap();
        assert_eq!(
            metric_label(&catalog, "anthropic.claude-v2"),
            "anthropic.claude-v2"
        );
        assert_eq!(metric_label(&catalog, "made.up-model-1234"), "unknown");
    }
}
