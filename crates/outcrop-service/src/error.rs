//! The errors a client can see, as kinds with their messages: one vocabulary for every layer
//! and every surface. How each kind is written on a wire (status, error code, exception
//! frame) is the wire crates' business, each with one exhaustive mapping.

use outcrop_engine::{EngineError, SubmitError};
use outcrop_sigv4::SigV4Error;
use outcrop_types::{FaultKind, GenerationError};

pub const INVALID_MODEL_ID: &str = "The provided model identifier is invalid.";
pub const INPUT_TOO_LONG: &str = "Input is too long for requested model.";
pub const TOO_MANY_REQUESTS: &str =
    "Too many requests, please wait before trying again. You have sent too many requests.  Wait before trying again.";
pub const TOO_MANY_TOKENS: &str = "Too many tokens, please wait before trying again.";
pub const INVALID_TOKEN: &str = "The security token included in the request is invalid.";

/// Every error a client can see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    ResourceNotFound(String),
    /// A name already taken, or a resource in a state that forbids the change.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Throttling(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    /// The model failed while streaming.
    #[error("{0}")]
    ModelStreamError(String),
    /// The model took too long (Bedrock's 408).
    #[error("{0}")]
    ModelTimeout(String),
    /// The model is not ready to serve yet (Bedrock's 429, which the SDKs retry).
    #[error("{0}")]
    ModelNotReady(String),
    /// The model failed to process the request (Bedrock's 424).
    #[error("{0}")]
    ModelError(String),
    /// Details are logged where the error happens; clients get a fixed text.
    #[error("internal error")]
    Internal,
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    #[error("{0}")]
    IncompleteSignature(String),
    #[error("{0}")]
    InvalidSignature(String),
    #[error("{INVALID_TOKEN}")]
    UnrecognizedClient,
    /// A bearer token (Bedrock API key) that is malformed, unknown, revoked or expired.
    #[error("{0}")]
    InvalidApiKey(String),
    #[error("unknown operation {method} {path}")]
    UnknownOperation { method: String, path: String },
}

impl From<SigV4Error> for ApiError {
    fn from(e: SigV4Error) -> Self {
        match e {
            SigV4Error::Missing => ApiError::MissingAuthenticationToken,
            SigV4Error::Incomplete(m) => ApiError::IncompleteSignature(m),
            SigV4Error::Expired(m) | SigV4Error::Mismatch(m) => ApiError::InvalidSignature(m),
        }
    }
}

impl From<GenerationError> for ApiError {
    fn from(e: GenerationError) -> Self {
        match e {
            GenerationError::InputTooLong { .. } => ApiError::Validation(INPUT_TOO_LONG.into()),
            GenerationError::Template(m) => ApiError::Validation(format!(
                "The prompt could not be rendered for the model: {m}"
            )),
            GenerationError::Constraint(m) => ApiError::Validation(format!(
                "The tool input schema cannot be used for constrained decoding: {m}"
            )),
            GenerationError::Engine(m) => {
                tracing::error!(error = %m, "engine failure");
                ApiError::Internal
            }
            GenerationError::ShuttingDown => ApiError::ServiceUnavailable(
                "The service is shutting down. Try again later.".into(),
            ),
            GenerationError::Fault { kind, message } => match kind {
                FaultKind::Throttling => ApiError::Throttling(message),
                FaultKind::ModelTimeout => ApiError::ModelTimeout(message),
                FaultKind::ServiceUnavailable => ApiError::ServiceUnavailable(message),
                FaultKind::ModelNotReady => ApiError::ModelNotReady(message),
                FaultKind::ModelError => ApiError::ModelError(message),
                FaultKind::ModelStreamError => ApiError::ModelStreamError(message),
                FaultKind::Validation => ApiError::Validation(message),
                FaultKind::InternalServer => ApiError::Internal,
            },
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::QueueFull => ApiError::Throttling(TOO_MANY_REQUESTS.into()),
            SubmitError::Stopped => ApiError::ServiceUnavailable(
                "The model is not available right now. Try again later.".into(),
            ),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Submit(e) => e.into(),
            EngineError::Generation(e) => e.into(),
            EngineError::Vanished => {
                tracing::error!("generation ended without a result");
                ApiError::Internal
            }
        }
    }
}

impl From<outcrop_store::StoreError> for ApiError {
    fn from(e: outcrop_store::StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        ApiError::Internal
    }
}

/// `1 validation error detected: Value X at 'path' failed to satisfy constraint: rule`.
pub fn constraint(value: &str, path: &str, rule: &str) -> ApiError {
    ApiError::Validation(format!(
        "1 validation error detected: Value {value} at '{path}' failed to satisfy constraint: {rule}"
    ))
}

pub fn not_null(path: &str) -> ApiError {
    constraint("null", path, "Member must not be null")
}
