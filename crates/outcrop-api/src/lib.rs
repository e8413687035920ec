//! The Bedrock API layer: the only crate that knows Bedrock's wire format.
//!
//! Every request goes through one pipeline ([`dispatch`]): assign a request id, recognise the
//! operation from the raw path, read the body (bounded), verify the SigV4 signature, run the
//! operation, and render any error through the one exhaustive mapping in [`error`].
//! Handlers parse bodies into `outcrop_types` values; nothing below this crate sees JSON.
//!
//! # Security
//! Bodies are limited to Bedrock's 25,000,000 bytes. There is no rate limiting yet beyond the
//! scheduler's bounded queue.

#![forbid(unsafe_code)]

mod access;
mod auth;
mod control;
mod converse;
mod embeddings;
pub mod error;
mod eventstream;
mod families;
mod health;
mod iam;
pub mod identities;
mod invoke;
mod ledger;
mod logging;
mod operation;
mod quota;
mod schema;
mod stream;
mod tools;

pub use access::{
    agree, needs_use_case, submit_use_case, write_access_notification, AccessMode, AccessStatus,
    AccountAccess, Mailer,
};
pub use auth::{AuthPolicy, Principal};
pub use error::ApiError;
pub use families::PromptMode;
pub use iam::{authorize, authorize_action, Permissions, PolicyDocument};
pub use logging::{Destinations, LogShipper};
pub use operation::{resolve_model_id, Operation};
pub use quota::{put_limits, Limits, Quotas};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use outcrop_models::Catalog;
use outcrop_scheduler::SchedulerHandle;
use outcrop_store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Bedrock's limit on an InvokeModel body.
pub const MAX_BODY_BYTES: usize = 25_000_000;

/// Everything request handlers share.
pub struct ApiState {
    pub catalog: Catalog,
    /// Schedulers by backing-model name.
    pub engines: HashMap<String, SchedulerHandle>,
    /// Embedding models by backing-model name.
    pub embedders: HashMap<String, Arc<dyn outcrop_types::Embedder>>,
    /// Requests and tokens per minute (and day), per account and model.
    pub quotas: Quotas,
    /// Embedding requests computed at once (each is a blocking task); others wait.
    pub embed_slots: tokio::sync::Semaphore,
    pub store: Arc<dyn Store>,
    pub auth: AuthPolicy,
    pub prompt_mode: PromptMode,
    pub access_mode: AccessMode,
    /// Where access notifications (RFC 5322 messages) are written; `None`: nowhere.
    pub outbox: Option<std::path::PathBuf>,
    /// Delivers model invocation logs, when the server can.
    pub log_shipper: Option<Arc<dyn logging::LogShipper>>,
    /// Sends access notifications by e-mail too, when configured.
    pub mailer: Option<Arc<dyn Mailer>>,
}

/// The HTTP application: Outcrop's own endpoints, and every other path through [`dispatch`].
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/_outcrop/health", get(health::health))
        .fallback(dispatch)
        .with_state(state)
}

/// The request pipeline shared by every Bedrock operation.
async fn dispatch(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let span = tracing::info_span!("request", id = %request_id, method = %parts.method, path = %parts.uri.path());
    async move {
        let response = answer(
            run(&state, &request_id, parts, body, started).await,
            &request_id,
        );
        let ms = started.elapsed().as_millis() as u64;
        tracing::info!(status = response.status().as_u16(), ms, "done");
        response
    }
    .instrument(span)
    .await
}

/// The response for an operation's result (errors through the one mapping), with its
/// `x-amzn-RequestId`.
fn answer(result: Result<Response, ApiError>, request_id: &str) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

async fn run(
    state: &Arc<ApiState>,
    request_id: &str,
    parts: axum::http::request::Parts,
    body: Body,
    started: Instant,
) -> Result<Response, ApiError> {
    let operation = Operation::parse(&parts.method, parts.uri.path())?;
    let body = read_body(&parts, body).await?;
    let principal = auth::authenticate(&parts, &body, state.store.as_ref(), state.auth).await?;
    tracing::debug!(operation = operation.name(), principal = %principal.arn, "authenticated");
    let query = parts.uri.query().unwrap_or("");
    perform(
        state, request_id, &principal, operation, query, &body, started,
    )
    .await
}

/// Runs an operation for a principal the caller has already authenticated (the console's
/// session does): the same authorization, access check, quotas, ledger and invocation logging
/// as a signed request, and the same response, errors included.
pub async fn call(
    state: &Arc<ApiState>,
    principal: &Principal,
    operation: Operation,
    query: &str,
    body: &[u8],
) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("console call", id = %request_id, operation = operation.name());
    async move {
        let result = perform(
            state,
            &request_id,
            principal,
            operation,
            query,
            body,
            started,
        )
        .await;
        answer(result, &request_id)
    }
    .instrument(span)
    .await
}

/// Everything after authentication.
async fn perform(
    state: &Arc<ApiState>,
    request_id: &str,
    principal: &Principal,
    operation: Operation,
    query: &str,
    body: &[u8],
    started: Instant,
) -> Result<Response, ApiError> {
    let Some(identifier) = operation.runtime_model() else {
        iam::authorize(state, principal, &operation).await?;
        return control_plane(state, principal, operation, query, body).await;
    };
    let call = ledger::Call {
        request_id: request_id.to_owned(),
        account_id: principal.account_id.clone(),
        principal_arn: principal.arn.clone(),
        operation: operation.name(),
        region: principal.region.clone(),
        identifier: identifier.to_owned(),
        started,
    };
    let result = runtime(state, principal, &call, operation, body).await;
    match &result {
        Ok(response) => {
            // Streams record themselves when they end.
            if let Some(m) = response.extensions().get::<ledger::Metered>() {
                let outcome = ledger::Outcome {
                    model_id: &m.model_id,
                    usage: m.usage,
                    first_byte_ms: None,
                    status: response.status().as_u16(),
                    error_code: None,
                };
                ledger::record(state, &call, outcome).await;
                if !m.output.is_null() {
                    let invocation = logging::Invocation {
                        model_id: &m.model_id,
                        embedding: is_embedding(state, &m.model_id),
                        input_body: body,
                        input_tokens: m.usage.input_tokens,
                        output_body: m.output.clone(),
                        output_tokens: m.usage.output_tokens,
                    };
                    logging::log(state, &call, invocation).await;
                }
            }
        }
        Err(e) => ledger::record_error(state, &call, e).await,
    }
    result
}

/// The runtime operations: authorized, access-checked, metered.
async fn runtime(
    state: &Arc<ApiState>,
    principal: &Principal,
    call: &ledger::Call,
    operation: Operation,
    body: &[u8],
) -> Result<Response, ApiError> {
    iam::authorize(state, principal, &operation).await?;
    let model_id = call.identifier.as_str();
    access::check_invoke(state, principal, model_id).await?;
    let streaming = matches!(
        operation,
        Operation::InvokeModelWithResponseStream { .. } | Operation::ConverseStream { .. }
    );
    // Quotas apply to known models; counting tokens is not throttled.
    let known = runtime_entry(state, model_id).is_ok();
    let permit = if known && !matches!(operation, Operation::CountTokens { .. }) {
        let billed = ledger::billed_model(state, model_id);
        match state
            .quotas
            .admit(&principal.account_id, &billed, quota::estimate(body))
        {
            Ok(p) => Some(p),
            // Bedrock throttles a stream inside the stream it already opened.
            Err(e) if streaming => {
                ledger::record_error(state, call, &e).await;
                return Ok(stream::throttled(&e));
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let stream_ledger = || ledger::StreamLedger {
        state: state.clone(),
        call: call.clone(),
        model_id: ledger::billed_model(state, model_id),
        permit: permit.clone(),
        input_body: bytes::Bytes::copy_from_slice(body),
    };
    let started = call.started;
    let result = match operation {
        Operation::InvokeModel { .. } => invoke::invoke_model(state, model_id, body, started).await,
        Operation::InvokeModelWithResponseStream { .. } => {
            stream::invoke_model_with_response_stream(state, model_id, body, stream_ledger()).await
        }
        Operation::Converse { .. } => converse::converse(state, model_id, body, started).await,
        Operation::ConverseStream { .. } => {
            converse::converse_stream(state, model_id, body, stream_ledger()).await
        }
        Operation::CountTokens { .. } => converse::count_tokens(state, model_id, body).await,
        other => {
            tracing::error!(operation = other.name(), "not a runtime operation");
            Err(ApiError::Internal)
        }
    };
    // Settle the reservation (streams settle when they end).
    if let Some(p) = &permit {
        match &result {
            Ok(r) => {
                if let Some(m) = r.extensions().get::<ledger::Metered>() {
                    p.settle(u64::from(m.usage.input_tokens) + u64::from(m.usage.output_tokens));
                }
            }
            Err(_) => p.settle(0),
        }
    }
    result
}

/// The control-plane operations (catalog, model access, inference profiles).
async fn control_plane(
    state: &ApiState,
    principal: &Principal,
    operation: Operation,
    query: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let principal = principal.clone();
    match operation {
        Operation::GetFoundationModelAvailability { model_id } => {
            access::availability(state, &principal, &model_id).await
        }
        Operation::ListFoundationModelAgreementOffers { model_id } => {
            access::offers(state, &model_id)
        }
        Operation::CreateFoundationModelAgreement => {
            access::create_agreement(state, &principal, body).await
        }
        Operation::DeleteFoundationModelAgreement => {
            access::delete_agreement(state, &principal, body).await
        }
        Operation::PutUseCaseForModelAccess => access::put_use_case(state, &principal, body).await,
        Operation::GetUseCaseForModelAccess => access::get_use_case(state, &principal).await,
        Operation::ListFoundationModels => {
            control::list_foundation_models(state, &principal, query)
        }
        Operation::GetFoundationModel { model_identifier } => {
            control::get_foundation_model(state, &principal, &model_identifier)
        }
        Operation::PutModelInvocationLoggingConfiguration => {
            logging::put_config(state, &principal, body).await
        }
        Operation::GetModelInvocationLoggingConfiguration => {
            logging::get_config(state, &principal).await
        }
        Operation::DeleteModelInvocationLoggingConfiguration => {
            logging::delete_config(state, &principal).await
        }
        Operation::GetUsageReport => control::usage_report(state, &principal, query).await,
        Operation::ListInferenceProfiles => {
            control::list_inference_profiles(state, &principal, query)
        }
        Operation::GetInferenceProfile {
            inference_profile_identifier,
        } => control::get_inference_profile(state, &principal, &inference_profile_identifier),
        other => {
            tracing::error!(operation = other.name(), "not a control-plane operation");
            Err(ApiError::Internal)
        }
    }
}

/// Whether a catalog model answers with embeddings (logged under the embedding switch).
pub(crate) fn is_embedding(state: &ApiState, model_id: &str) -> bool {
    state
        .catalog
        .get(model_id)
        .is_some_and(|e| e.output_modalities.iter().any(|m| m == "EMBEDDING"))
}

/// The catalog entry an identifier (plain id or foundation-model ARN) names, or Bedrock's
/// "The provided model identifier is invalid."
pub(crate) fn catalog_entry<'s>(
    state: &'s ApiState,
    identifier: &str,
) -> Result<&'s outcrop_models::CatalogEntry, ApiError> {
    resolve_model_id(identifier)
        .and_then(|id| state.catalog.get(id))
        .ok_or_else(|| ApiError::Validation(error::INVALID_MODEL_ID.into()))
}

/// The catalog entry a runtime identifier names: a plain id, a foundation-model ARN, or a
/// system inference profile (id or ARN; then also its geography).
pub(crate) fn runtime_entry<'s>(
    state: &'s ApiState,
    identifier: &str,
) -> Result<(&'s outcrop_models::CatalogEntry, Option<&'s str>), ApiError> {
    let invalid = || ApiError::Validation(error::INVALID_MODEL_ID.into());
    let id = resolve_model_id(identifier).ok_or_else(invalid)?;
    if let Some(entry) = state.catalog.get(id) {
        return Ok((entry, None));
    }
    let (geo, entry) = state.catalog.profile(id).ok_or_else(invalid)?;
    Ok((entry, Some(geo)))
}

/// A JSON response with the status given: the shape of every control-plane answer.
pub(crate) fn json_response(status: axum::http::StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn too_large() -> ApiError {
    ApiError::Validation(format!(
        "1 validation error detected: Value at 'body' failed to satisfy constraint: Member must have length less than or equal to {MAX_BODY_BYTES}"
    ))
}

/// Reads the whole body, refusing (without reading it all) one over Bedrock's limit.
async fn read_body(
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<bytes::Bytes, ApiError> {
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            use std::error::Error;
            if e.source()
                .is_some_and(|s| s.is::<http_body_util_limit::LengthLimitError>())
            {
                too_large()
            } else {
                tracing::info!(error = %e, "body read failed");
                ApiError::Validation("The request body could not be read.".into())
            }
        })
}

mod http_body_util_limit {
    pub use http_body_util::LengthLimitError;
}
