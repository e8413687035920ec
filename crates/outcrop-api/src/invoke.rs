//! InvokeModel: one request body in, the model family's response body out. Also the steps
//! every runtime operation shares: resolving the model id and running a generation.

use crate::embeddings::EmbedFormat;
use crate::families::{self, Generated, ParseContext, Parsed};
use crate::{Answer, ApiError, ApiState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use outcrop_engine::Engine;
use outcrop_models::CatalogEntry;
use outcrop_service::Resolved;
use outcrop_types::{GenerationRequest, Usage};
use std::time::Instant;

/// Bedrock's answer when a text-only operation names an embedding model.
pub const NOT_A_TEXT_MODEL: &str =
    "This action doesn't support the model that you provided. Try again with a supported text or chat model.";

/// A model the runtime can invoke, with the engine that serves it.
pub(crate) struct Invocable<'s> {
    pub entry: &'s CatalogEntry,
    pub engine: &'s dyn Engine,
}

/// The text model a resolved identifier names, and its engine. A model offered only through
/// inference profiles refuses its plain id, as Bedrock does.
pub(crate) fn invocable<'s>(
    state: &'s ApiState,
    resolved: Resolved<'s>,
) -> Result<Invocable<'s>, ApiError> {
    let Resolved {
        entry,
        geography: profile,
        engine: own_engine,
    } = resolved;
    if EmbedFormat::from_format(&entry.format).is_some() {
        return Err(ApiError::Validation(NOT_A_TEXT_MODEL.into()));
    }
    if profile.is_none() && !entry.on_demand {
        return Err(ApiError::Validation(format!(
            "Invocation of model ID {} with on-demand throughput isn't supported. Retry your request with the ID or ARN of an inference profile that contains this model.",
            entry.id
        )));
    }
    if let Some(engine) = own_engine {
        return Ok(Invocable { entry, engine });
    }
    let engine = state.engines.get(&entry.backing_model).ok_or_else(|| {
        tracing::error!(model = %entry.backing_model, "catalog names a backing model that is not loaded");
        ApiError::ServiceUnavailable("The model is not available right now. Try again later.".into())
    })?;
    Ok(Invocable {
        entry,
        engine: engine.as_ref(),
    })
}

/// A validated invocation: the parsed body and the engine that runs it.
pub(crate) struct Prepared<'s> {
    pub model_id: String,
    pub parsed: Parsed,
    pub engine: &'s dyn Engine,
}

/// Resolves the model and parses the body: everything an invocation checks before it runs.
pub(crate) fn prepare<'s>(
    state: &'s ApiState,
    resolved: Resolved<'s>,
    body: &[u8],
    seed: u32,
) -> Result<Prepared<'s>, ApiError> {
    let Invocable { entry, engine } = invocable(state, resolved)?;
    let parsed = families::parse(
        body,
        &ParseContext {
            entry,
            prompt_mode: state.prompt_mode,
            seed,
        },
    )?;
    Ok(Prepared {
        model_id: entry.id.clone(),
        parsed,
        engine,
    })
}

pub(crate) async fn invoke_model(
    prepared: Prepared<'_>,
    started: Instant,
) -> Result<Answer, ApiError> {
    let runs = prepared
        .parsed
        .requests
        .iter()
        .map(|r| generate(prepared.engine, r.clone()));
    let generated = futures_util::future::try_join_all(runs).await?;
    let usage = generated.iter().fold(Usage::default(), |acc, g| Usage {
        // Several answers share one prompt: it is counted once.
        input_tokens: g.usage.input_tokens,
        output_tokens: acc.output_tokens + g.usage.output_tokens,
        ..g.usage
    });
    let body = families::response_body(&prepared.parsed, &prepared.model_id, &generated);
    tracing::info!(
        model = prepared.model_id,
        input_tokens = usage.input_tokens,
        output_tokens = usage.output_tokens,
        "invoked"
    );
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    insert_usage_headers(response.headers_mut(), usage, started);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    Ok(Answer::Whole {
        response,
        usage,
        output: Some(body),
    })
}

/// The token counts and latency headers of a non-streaming InvokeModel answer.
fn insert_usage_headers(headers: &mut HeaderMap, usage: Usage, started: Instant) {
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
    crate::cache::insert_headers(headers, usage);
}

/// Runs a generation to its end and returns the whole text.
pub(crate) async fn generate(
    engine: &dyn Engine,
    request: GenerationRequest,
) -> Result<Generated, ApiError> {
    Ok(outcrop_engine::collect(engine.submit(request)?).await?)
}

/// A sampling seed per request: sampled answers differ between calls, as on Bedrock.
pub(crate) fn rand_seed() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}
