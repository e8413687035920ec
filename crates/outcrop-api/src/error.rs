//! The one place where errors become Bedrock responses: status, `x-amzn-ErrorType` (with the
//! suffix real Bedrock sends), and the `{"message": ...}` body. The match is exhaustive: a new
//! variant does not compile until it has a wire form.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use outcrop_scheduler::SubmitError;
use outcrop_sigv4::SigV4Error;
use outcrop_types::GenerationError;

/// Bedrock's errors carry this suffix in `x-amzn-ErrorType`...
const BEDROCK: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";
/// ...and authentication errors, raised by the AWS front end, this one.
const CORAL: &str = "http://internal.amazon.com/coral/com.amazon.coral.service/";

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
    #[error("{0}")]
    Throttling(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    /// The model failed while streaming.
    #[error("{0}")]
    ModelStreamError(String),
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
    #[error("unknown operation {method} {path}")]
    UnknownOperation { method: String, path: String },
}

impl ApiError {
    /// (HTTP status, AWS error code, error-type suffix, message).
    pub fn wire(&self) -> (StatusCode, &'static str, &'static str, String) {
        use ApiError::*;
        match self {
            Validation(m) => (
                StatusCode::BAD_REQUEST,
                "ValidationException",
                BEDROCK,
                m.clone(),
            ),
            AccessDenied(m) => (
                StatusCode::FORBIDDEN,
                "AccessDeniedException",
                BEDROCK,
                m.clone(),
            ),
            ResourceNotFound(m) => (
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                BEDROCK,
                m.clone(),
            ),
            Throttling(m) => (
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlingException",
                BEDROCK,
                m.clone(),
            ),
            ServiceUnavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                BEDROCK,
                m.clone(),
            ),
            ModelStreamError(m) => (
                StatusCode::FAILED_DEPENDENCY,
                "ModelStreamErrorException",
                BEDROCK,
                m.clone(),
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                BEDROCK,
                "The server encountered an internal error while processing the request.".into(),
            ),
            MissingAuthenticationToken => (
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                CORAL,
                "Missing Authentication Token".into(),
            ),
            IncompleteSignature(m) => (
                StatusCode::FORBIDDEN,
                "IncompleteSignatureException",
                CORAL,
                m.clone(),
            ),
            InvalidSignature(m) => (
                StatusCode::FORBIDDEN,
                "InvalidSignatureException",
                CORAL,
                m.clone(),
            ),
            UnrecognizedClient => (
                StatusCode::FORBIDDEN,
                "UnrecognizedClientException",
                CORAL,
                INVALID_TOKEN.into(),
            ),
            UnknownOperation { .. } => (
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                CORAL,
                "The requested operation is not recognized by the service.".into(),
            ),
        }
    }

    /// A `ValidationException` in the "Malformed input request" form of Bedrock's body checks.
    pub fn malformed(detail: impl std::fmt::Display) -> Self {
        ApiError::Validation(format!(
            "Malformed input request: {detail}, please reformat your input and try again."
        ))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, suffix, message) = self.wire();
        if status.is_server_error() {
            tracing::warn!(code, %message, "request failed");
        } else {
            tracing::info!(code, %message, "request refused");
        }
        let body = serde_json::json!({ "message": message }).to_string();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let Ok(v) = HeaderValue::from_str(&format!("{code}:{suffix}")) {
            headers.insert("x-amzn-errortype", v);
        }
        response
    }
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

impl From<outcrop_store::StoreError> for ApiError {
    fn from(e: outcrop_store::StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        ApiError::Internal
    }
}

impl ApiError {
    /// The lower-camel event-stream union member that carries this error once a stream has
    /// begun (an exception frame instead of an HTTP status).
    pub fn stream_exception_type(&self) -> &'static str {
        use ApiError::*;
        match self {
            Validation(_) => "validationException",
            Throttling(_) => "throttlingException",
            ServiceUnavailable(_) => "serviceUnavailableException",
            ModelStreamError(_) => "modelStreamErrorException",
            Internal => "internalServerException",
            // Raised before any byte of a response, never inside a stream.
            AccessDenied(_)
            | ResourceNotFound(_)
            | MissingAuthenticationToken
            | IncompleteSignature(_)
            | InvalidSignature(_)
            | UnrecognizedClient
            | UnknownOperation { .. } => "internalServerException",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_use_the_coral_suffix() {
        let (status, code, suffix, msg) = ApiError::UnrecognizedClient.wire();
        assert_eq!(
            (status.as_u16(), code, suffix),
            (403, "UnrecognizedClientException", CORAL)
        );
        assert_eq!(
            msg,
            "The security token included in the request is invalid."
        );
        let (_, code, suffix, _) = ApiError::from(SigV4Error::Mismatch("x".into())).wire();
        assert_eq!((code, suffix), ("InvalidSignatureException", CORAL));
    }

    #[test]
    fn model_errors_use_the_bedrock_suffix() {
        let (status, code, suffix, msg) = ApiError::from(GenerationError::InputTooLong {
            prompt_tokens: 9,
            context_tokens: 8,
        })
        .wire();
        assert_eq!(
            (status.as_u16(), code, suffix),
            (400, "ValidationException", BEDROCK)
        );
        assert_eq!(msg, "Input is too long for requested model.");
        let (status, code, _, msg) = ApiError::from(SubmitError::QueueFull).wire();
        assert_eq!((status.as_u16(), code), (429, "ThrottlingException"));
        assert!(
            msg.contains("requests.  Wait"),
            "two spaces, as Bedrock sends"
        );
    }

    #[test]
    fn internal_details_are_not_shown() {
        let (status, _, _, msg) =
            ApiError::from(GenerationError::Engine("segfault at 0xdead".into())).wire();
        assert_eq!(status.as_u16(), 500);
        assert!(!msg.contains("dead"));
    }

    #[test]
    fn malformed_wraps_the_detail() {
        assert_eq!(
            ApiError::malformed("#: required key [max_tokens_to_sample] not found").to_string(),
            "Malformed input request: #: required key [max_tokens_to_sample] not found, please reformat your input and try again."
        );
    }
}
