//! InvokeModel: one request body in, the model family's response body out.

use crate::anthropic::{completion_body, parse_text_request};
use crate::{ApiError, ApiState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use outcrop_scheduler::{GenerationEvent, SchedulerHandle};
use outcrop_types::{GenerationRequest, StopReason, Usage};
use std::time::Instant;

/// The body formats this instance speaks, chosen by model id.
pub(crate) enum Family {
    AnthropicText,
}

fn family(model_id: &str) -> Option<Family> {
    (model_id.starts_with("anthropic.claude-v2")
        || model_id.starts_with("anthropic.claude-instant-v1"))
    .then_some(Family::AnthropicText)
}

/// A validated invocation: the model family, its engine and the generation request.
pub(crate) struct Prepared<'s> {
    pub model_id: String,
    pub family: Family,
    pub engine: &'s SchedulerHandle,
    pub request: GenerationRequest,
}

/// Resolves the model and parses the body: everything an invocation checks before it runs.
pub(crate) fn prepare<'s>(
    state: &'s ApiState,
    identifier: &str,
    body: &[u8],
) -> Result<Prepared<'s>, ApiError> {
    let entry = crate::catalog_entry(state, identifier)?;
    let model_id = entry.id.as_str();
    let Some(family) = family(model_id) else {
        return Err(ApiError::Validation(format!(
            "Outcrop does not serve the request format of {model_id} yet."
        )));
    };
    let request = match family {
        Family::AnthropicText => parse_text_request(body, state.prompt_mode, rand_seed())?,
    };
    let engine = state.engines.get(&entry.backing_model).ok_or_else(|| {
        tracing::error!(model = %entry.backing_model, "catalog names a backing model that is not loaded");
        ApiError::ServiceUnavailable("The model is not available right now. Try again later.".into())
    })?;
    Ok(Prepared {
        model_id: model_id.to_owned(),
        family,
        engine,
        request,
    })
}

pub async fn invoke_model(
    state: &ApiState,
    identifier: &str,
    body: &[u8],
    started: Instant,
) -> Result<Response, ApiError> {
    let prepared = prepare(state, identifier, body)?;
    let (text, reason, usage) = generate(prepared.engine, prepared.request).await?;
    let body = match prepared.family {
        Family::AnthropicText => completion_body(&text, &reason).to_string(),
    };
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "x-amzn-bedrock-input-token-count",
        usage.input_tokens.into(),
    );
    headers.insert(
        "x-amzn-bedrock-output-token-count",
        usage.output_tokens.into(),
    );
    headers.insert(
        "x-amzn-bedrock-invocation-latency",
        (started.elapsed().as_millis() as u64).into(),
    );
    tracing::info!(
        model = prepared.model_id,
        input_tokens = usage.input_tokens,
        output_tokens = usage.output_tokens,
        "invoked"
    );
    Ok((StatusCode::OK, headers, body).into_response())
}

/// Runs a generation to its end and returns the whole text.
async fn generate(
    engine: &SchedulerHandle,
    request: GenerationRequest,
) -> Result<(String, StopReason, Usage), ApiError> {
    let mut events = engine.submit(request)?;
    let mut text = String::new();
    while let Some(event) = events.recv().await {
        match event {
            GenerationEvent::Started { .. } => {}
            GenerationEvent::Text(t) => text.push_str(&t),
            GenerationEvent::Finished { reason, usage } => return Ok((text, reason, usage)),
            GenerationEvent::Failed(e) => return Err(e.into()),
        }
    }
    tracing::error!("generation ended without a result");
    Err(ApiError::Internal)
}

/// A sampling seed per request: sampled answers differ between calls, as on Bedrock.
pub(crate) fn rand_seed() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}
