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

mod anthropic_api;
mod authorize;
mod cache;
mod call_options;
mod control;
mod converse;
mod embeddings;
pub mod error;
mod eventstream;
mod families;
#[cfg(test)]
mod fuzz;
mod health;
mod invocation;
mod invoke;
mod openai;
mod operation;
mod reasoning;
mod relay;
mod schema;
mod stream;
mod structured;
mod tier;
mod tools;

pub use authorize::authorize;
pub use error::ApiError;
pub use families::PromptMode;
pub use operation::{Operation, Surface};
pub use relay::Relay;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use call_options::CallOptions;
use invocation::Invocation;
use outcrop_service::ledger::{self, Ended, Meter};
use outcrop_service::{access, Principal, Service};
use outcrop_types::Usage;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Bedrock's limit on an InvokeModel body.
pub const MAX_BODY_BYTES: usize = 25_000_000;

/// What the Bedrock surface holds: the service, and how it reads Claude prompts.
pub struct ApiState {
    pub service: Arc<Service>,
    pub prompt_mode: PromptMode,
    /// Every generation deterministic (`[engine] deterministic`), not only those that ask
    /// with [`DETERMINISTIC_HEADER`].
    pub deterministic: bool,
    /// Backing models served by an upstream Bedrock endpoint or a recording, by name.
    pub relays: std::collections::HashMap<String, Relay>,
    /// How long a runtime call may take to be answered (a stream: to open); beyond it the
    /// call ends with ModelTimeoutException. `None`: no limit.
    pub request_timeout: Option<std::time::Duration>,
}

/// A request header that makes one call deterministic: it runs alone on a cleared KV cache,
/// and a sampler the request does not seed is seeded with 0, so that the same request gives
/// the same bytes whatever else the server is doing.
pub const DETERMINISTIC_HEADER: &str = "x-outcrop-deterministic";

/// Handlers reach the service's parts (catalog, engines, store...) through the state.
impl std::ops::Deref for ApiState {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.service
    }
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
    let surface = Surface::of(parts.uri.path());
    async move {
        let response = answer(
            run(&state, &request_id, parts, body, started).await,
            &request_id,
            surface,
        );
        let ms = started.elapsed().as_millis() as u64;
        tracing::info!(status = response.status().as_u16(), ms, "done");
        response
    }
    .instrument(span)
    .await
}

/// The response for an operation's result (errors through the one mapping, in the shape of
/// the surface the request came by), with its `x-amzn-RequestId`.
fn answer(result: Result<Response, ApiError>, request_id: &str, surface: Surface) -> Response {
    let mut response = result.unwrap_or_else(|e| match surface {
        Surface::Bedrock => error::response(&e),
        Surface::OpenAi => openai::error_response(&e),
        Surface::Anthropic => anthropic_api::error_response(&e),
    });
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
    // The key, its scope and the date are checked before the body is read.
    let screened = outcrop_service::auth::screen(state, &parts).await?;
    let mut body = read_body(&parts, body).await?;
    let operation = operation.with_body(&body);
    let principal = outcrop_service::auth::authenticate(screened, &parts, &body)?;
    if matches!(operation, Operation::AnthropicMessages { .. }) {
        body = anthropic_api::invoke_body(&parts.headers, &body);
    }
    tracing::debug!(operation = operation.name(), principal = %principal.arn, "authenticated");
    let query = parts.uri.query().unwrap_or("");
    let options = CallOptions::from_headers(&parts.headers, state.deterministic)?;
    perform(
        state, request_id, &principal, operation, query, body, started, options,
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
        let body = bytes::Bytes::copy_from_slice(body);
        let result = perform(
            state,
            &request_id,
            principal,
            operation,
            query,
            body,
            started,
            CallOptions {
                deterministic: state.deterministic,
                ..Default::default()
            },
        )
        .await;
        answer(result, &request_id, Surface::Bedrock)
    }
    .instrument(span)
    .await
}

/// Everything after authentication.
#[allow(clippy::too_many_arguments)]
async fn perform(
    state: &Arc<ApiState>,
    request_id: &str,
    principal: &Principal,
    operation: Operation,
    query: &str,
    body: bytes::Bytes,
    started: Instant,
    options: CallOptions,
) -> Result<Response, ApiError> {
    let Some(identifier) = operation.runtime_model() else {
        authorize::authorize(state, principal, &operation).await?;
        return control_plane(state, principal, operation, query, &body).await;
    };
    let call = ledger::Call {
        request_id: request_id.to_owned(),
        account_id: principal.account_id.clone(),
        principal_arn: principal.arn.clone(),
        operation: operation.name(),
        region: principal.region.clone(),
        identifier: identifier.to_owned(),
        started,
        service_tier: options.service_tier,
        request_metadata: options.request_metadata.clone(),
    };
    // The call's one record: finished below, taken by a stream that opens, or written as
    // cut short if this future is dropped (the client went away).
    // The meter keeps the body (a shared buffer, not a copy) for invocation logging.
    let mut meter = Some(Meter::new(state.service.clone(), call, body.clone()));
    let answered = runtime(state, principal, &mut meter, &operation, &body, &options);
    let result = match state.request_timeout {
        // Dropping the call at the deadline cancels its generation.
        Some(limit) => tokio::time::timeout(limit, answered)
            .await
            .unwrap_or_else(|_| {
                tracing::warn!(seconds = limit.as_secs_f64(), "request deadline passed");
                Err(ApiError::ModelTimeout(format!(
                    "The request was not answered within {} seconds. Ask for fewer tokens, or try again later.",
                    limit.as_secs_f64()
                )))
            }),
        None => answered.await,
    }
    .map(|answer| echo_headers(answer, &operation, &options));
    let Some(meter) = meter else {
        return result.map(Answer::into_response);
    };
    let ended = match &result {
        Ok(Answer::Whole {
            usage,
            output,
            response,
        }) => Ended {
            status: response.status().as_u16(),
            error_code: None,
            usage: *usage,
            output: output.clone(),
        },
        Ok(Answer::Stream(response)) => Ended {
            status: response.status().as_u16(),
            error_code: None,
            usage: Usage::default(),
            output: None,
        },
        Err(e) => failed(e),
    };
    let answered = result.is_ok();
    if !meter.finish(ended).await && answered {
        // Not billed anywhere, so not given: the client sees the failure and may retry.
        return Err(ApiError::Internal);
    }
    result.map(Answer::into_response)
}

/// InvokeModel's answers repeat the service tier and latency setting their headers asked for.
fn echo_headers(mut answer: Answer, operation: &Operation, options: &CallOptions) -> Answer {
    if !matches!(
        operation,
        Operation::InvokeModel { .. } | Operation::InvokeModelWithResponseStream { .. }
    ) {
        return answer;
    }
    let response = match &mut answer {
        Answer::Whole { response, .. } | Answer::Stream(response) => response,
    };
    let headers = response.headers_mut();
    if let Some(t) = options.service_tier {
        headers.insert(
            call_options::SERVICE_TIER_HEADER,
            HeaderValue::from_static(t),
        );
    }
    if let Some(l) = options.latency {
        headers.insert(call_options::LATENCY_HEADER, HeaderValue::from_static(l));
    }
    answer
}

/// How a call that failed before any answer is recorded.
fn failed(error: &ApiError) -> Ended {
    let wire = error::wire(error);
    Ended {
        status: wire.status.as_u16(),
        error_code: Some(wire.code),
        usage: Usage::default(),
        output: None,
    }
}

/// What a runtime operation answered.
pub(crate) enum Answer {
    /// A whole response: the tokens it used, and what it said (for invocation logging).
    Whole {
        response: Response,
        usage: Usage,
        output: Option<serde_json::Value>,
    },
    /// A stream, which took the call's meter and records itself when it ends.
    Stream(Response),
}

impl Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Whole { response, .. } | Answer::Stream(response) => response,
        }
    }
}

/// The runtime operations: the model resolved once, then authorized, access-checked and
/// admitted under the quotas, in Bedrock's order of errors; an unknown model is reported by
/// the operation itself after IAM has had its say.
async fn runtime(
    state: &Arc<ApiState>,
    principal: &Principal,
    meter: &mut Option<Meter>,
    operation: &Operation,
    body: &[u8],
    options: &CallOptions,
) -> Result<Answer, ApiError> {
    let deterministic = options.deterministic;
    let identifier = operation.runtime_model().unwrap_or_default();
    if identifier.is_empty() {
        // OpenAI and Anthropic bodies name the model; Bedrock's paths always have one.
        return Err(ApiError::Validation(
            "model is required: a Bedrock model id or inference profile.".into(),
        ));
    }
    // An imported model's ARN names the account's own model, with an engine of its own.
    let imported = state.imported(principal, identifier).await;
    let resolved = match &imported {
        Ok(Some(model)) => Ok(model.resolved()),
        Ok(None) => state.resolve(identifier),
        Err(e) => Err(e.clone()),
    };
    if let (Ok(r), Some(m)) = (&resolved, meter.as_mut()) {
        m.resolved(r.entry);
    }
    authorize::authorize_resolved(state, principal, operation, resolved.as_ref().ok()).await?;
    let resolved = resolved?;
    if !resolved.is_imported() {
        access::check_invoke(state, principal, resolved.entry).await?;
    }
    if let Some(relay) = state.relays.get(&resolved.entry.backing_model) {
        let output = relay::output_estimate(body);
        if let Some(refused) = admit(
            state,
            principal,
            meter,
            operation,
            resolved.entry,
            body,
            output,
        )
        .await?
        {
            return Ok(refused);
        }
        return relay::forward(
            relay,
            operation,
            &resolved.entry.id,
            bytes::Bytes::copy_from_slice(body),
            options,
            meter,
        )
        .await;
    }
    // The body, parsed once; its errors are reported after the quotas have had their say.
    let seed = if deterministic {
        0
    } else {
        invoke::rand_seed()
    };
    let mut invocation = invocation::parse(state, operation, resolved, body, seed);
    if let (Ok(i), Some(t)) = (invocation.as_mut(), options.service_tier) {
        match tier::check(resolved.entry, t) {
            Ok(()) => i.set_tier(tier::scheduling(t)),
            Err(e) => invocation = Err(e),
        }
    }
    if let Ok(i) = invocation.as_mut() {
        i.label(&resolved.entry.id, operation.name(), deterministic);
        i.scope_cache(&principal.account_id, &resolved.entry.id);
        if let (Some((tier, metadata)), Some(m)) = (i.converse_settings(), meter.as_mut()) {
            m.describe(tier, metadata);
        }
    }
    let streaming = operation.streams();
    let output = invocation.as_ref().map_or(0, Invocation::max_output_tokens);
    if let Some(refused) = admit(
        state,
        principal,
        meter,
        operation,
        resolved.entry,
        body,
        output,
    )
    .await?
    {
        return Ok(refused);
    }
    let started = meter
        .as_ref()
        .map_or_else(Instant::now, |m| m.call().started);
    match invocation? {
        Invocation::Generate(prepared) => invoke::invoke_model(prepared, started).await,
        Invocation::Embed { entry, format, job } => {
            embeddings::invoke(state, entry, format, job, started).await
        }
        Invocation::Stream {
            engine,
            request,
            chunker,
        } => stream::invoke_model_with_response_stream(engine, request, chunker, meter)
            .await
            .map(Answer::Stream),
        Invocation::Converse { model, request } if streaming => {
            converse::converse_stream(model.engine, request, meter)
                .await
                .map(Answer::Stream)
        }
        Invocation::Converse { model, request } => {
            converse::converse(model, request, started).await
        }
        Invocation::Count { engine, prompt } => converse::count_tokens(engine, prompt).await,
        Invocation::Chat { model, request } if streaming => {
            openai::chat_stream(model.engine, request, meter)
                .await
                .map(Answer::Stream)
        }
        Invocation::Chat { model, request } => openai::chat(model, request).await,
        Invocation::Respond { model, request } if streaming => {
            openai::responses::stream(model.engine, request, meter)
                .await
                .map(Answer::Stream)
        }
        Invocation::Respond { model, request } => openai::responses::create(model, request).await,
        Invocation::ServerSent {
            engine,
            request,
            chunker,
        } => stream::server_sent_chunks(
            engine,
            request,
            chunker,
            anthropic_api::stream_failure,
            meter,
        )
        .await
        .map(Answer::Stream),
    }
}

/// Admission under the caller's concurrency cap and the quotas (counting tokens is neither
/// capped nor throttled): the place and permit go to the meter; a
/// refusal is an error, or for Bedrock's event streams, which are opened before a quota
/// refusal, the answer to send (server-sent streams refuse with an HTTP error, as the OpenAI
/// and Anthropic APIs do).
async fn admit(
    state: &ApiState,
    principal: &Principal,
    meter: &mut Option<Meter>,
    operation: &Operation,
    entry: &outcrop_models::CatalogEntry,
    body: &[u8],
    output: u64,
) -> Result<Option<Answer>, ApiError> {
    if matches!(operation, Operation::CountTokens { .. }) {
        return Ok(None);
    }
    let event_stream = matches!(
        operation,
        Operation::InvokeModelWithResponseStream { .. } | Operation::ConverseStream { .. }
    );
    let admitted = match state.concurrency.enter(&principal.arn) {
        Ok(running) => state
            .quotas
            .admit(
                &principal.account_id,
                &entry.id,
                invocation::input_estimate(body) + output,
            )
            .await
            .map(|permit| (running, permit)),
        Err(e) => Err(e),
    };
    match (admitted, meter.as_mut()) {
        (Ok((running, permit)), Some(m)) => {
            m.admitted(permit);
            m.holds(running);
        }
        (Ok(_), None) => {}
        (Err(e), Some(_)) if event_stream => {
            if let Some(m) = meter.take() {
                // A refusal is sent whether or not its record was kept.
                let _ = m.finish(failed(&e)).await;
            }
            return Ok(Some(Answer::Stream(stream::throttled(&e))));
        }
        (Err(e), _) => return Err(e),
    }
    Ok(None)
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
        Operation::GetFoundationModelAvailability { identifier } => {
            control::access::availability(state, &principal, &identifier).await
        }
        Operation::ListFoundationModelAgreementOffers { identifier } => {
            control::access::offers(state, &identifier)
        }
        Operation::CreateFoundationModelAgreement => {
            control::access::create_agreement(state, &principal, body).await
        }
        Operation::DeleteFoundationModelAgreement => {
            control::access::delete_agreement(state, &principal, body).await
        }
        Operation::PutUseCaseForModelAccess => {
            control::access::put_use_case(state, &principal, body).await
        }
        Operation::GetUseCaseForModelAccess => {
            control::access::get_use_case(state, &principal).await
        }
        Operation::ListFoundationModels => {
            control::list_foundation_models(state, &principal, query)
        }
        Operation::GetFoundationModel { identifier } => {
            control::get_foundation_model(state, &principal, &identifier)
        }
        Operation::PutModelInvocationLoggingConfiguration => {
            control::logging::put_config(state, &principal, body).await
        }
        Operation::GetModelInvocationLoggingConfiguration => {
            control::logging::get_config(state, &principal).await
        }
        Operation::DeleteModelInvocationLoggingConfiguration => {
            control::logging::delete_config(state, &principal).await
        }
        Operation::GetUsageReport => control::usage_report(state, &principal, query).await,
        Operation::ListInferenceProfiles => {
            control::list_inference_profiles(state, &principal, query)
        }
        Operation::GetInferenceProfile { identifier } => {
            control::get_inference_profile(state, &principal, &identifier)
        }
        Operation::ListOpenAiModels => openai::models(state, &principal).await,
        Operation::CreateModelImportJob => {
            control::imports::create_job(&state.service, &principal, body).await
        }
        Operation::GetModelImportJob { identifier } => {
            control::imports::get_job(state, &principal, &identifier).await
        }
        Operation::ListModelImportJobs => {
            control::imports::list_jobs(state, &principal, query).await
        }
        Operation::ListImportedModels => {
            control::imports::list_models(state, &principal, query).await
        }
        Operation::GetImportedModel { identifier } => {
            control::imports::get_model(state, &principal, &identifier).await
        }
        Operation::DeleteImportedModel { identifier } => {
            control::imports::delete_model(state, &principal, &identifier).await
        }
        other => {
            tracing::error!(operation = other.name(), "not a control-plane operation");
            Err(ApiError::Internal)
        }
    }
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
