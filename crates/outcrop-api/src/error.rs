//! The one place where errors become Bedrock responses: status, `x-amzn-ErrorType` (with the
//! suffix real Bedrock sends), and the `{"message": ...}` body, or the exception frame of a
//! stream that has begun. The matches are exhaustive: a new kind of error does not compile
//! until it has a wire form.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
pub use outcrop_service::error::*;
pub use outcrop_service::ApiError;

/// Bedrock's errors carry this suffix in `x-amzn-ErrorType`...
const BEDROCK: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";
/// ...and authentication errors, raised by the AWS front end, this one.
const CORAL: &str = "http://internal.amazon.com/coral/com.amazon.coral.service/";

/// An error as Bedrock writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    pub status: StatusCode,
    /// The AWS error code (`x-amzn-ErrorType` before the colon).
    pub code: &'static str,
    /// The error-type suffix after the colon.
    pub suffix: &'static str,
    pub message: String,
}

/// How Bedrock writes `error`.
pub fn wire(error: &ApiError) -> Wire {
    use ApiError::*;
    let (status, code, suffix, message) = match error {
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
        // Bedrock's control plane answers conflicts with 400.
        Conflict(m) => (
            StatusCode::BAD_REQUEST,
            "ConflictException",
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
        ModelTimeout(m) => (
            StatusCode::REQUEST_TIMEOUT,
            "ModelTimeoutException",
            BEDROCK,
            m.clone(),
        ),
        ModelNotReady(m) => (
            StatusCode::TOO_MANY_REQUESTS,
            "ModelNotReadyException",
            BEDROCK,
            m.clone(),
        ),
        ModelError(m) => (
            StatusCode::FAILED_DEPENDENCY,
            "ModelErrorException",
            BEDROCK,
            m.clone(),
        ),
        InvalidApiKey(m) => (
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            CORAL,
            m.clone(),
        ),
        UnknownOperation { .. } => (
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            CORAL,
            "The requested operation is not recognized by the service.".into(),
        ),
    };
    Wire {
        status,
        code,
        suffix,
        message,
    }
}

/// A `ValidationException` in the "Malformed input request" form of Bedrock's body checks.
pub fn malformed(detail: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(format!(
        "Malformed input request: {detail}, please reformat your input and try again."
    ))
}

/// The HTTP response for `error` (logged: server errors as warnings, refusals as info).
pub fn response(error: &ApiError) -> Response {
    let Wire {
        status,
        code,
        suffix,
        message,
    } = wire(error);
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

/// The lower-camel event-stream union member that carries `error` once a stream has begun
/// (an exception frame instead of an HTTP status).
pub fn stream_exception_type(error: &ApiError) -> &'static str {
    use ApiError::*;
    match error {
        Validation(_) => "validationException",
        Throttling(_) => "throttlingException",
        ServiceUnavailable(_) => "serviceUnavailableException",
        ModelStreamError(_) => "modelStreamErrorException",
        ModelTimeout(_) => "modelTimeoutException",
        // Not members of the stream's error union: the nearest one that is.
        ModelNotReady(_) => "serviceUnavailableException",
        ModelError(_) => "modelStreamErrorException",
        Internal => "internalServerException",
        // Raised before any byte of a response, never inside a stream.
        AccessDenied(_)
        | ResourceNotFound(_)
        | Conflict(_)
        | MissingAuthenticationToken
        | IncompleteSignature(_)
        | InvalidSignature(_)
        | UnrecognizedClient
        | InvalidApiKey(_)
        | UnknownOperation { .. } => "internalServerException",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outcrop_engine::SubmitError;
    use outcrop_sigv4::SigV4Error;
    use outcrop_types::GenerationError;

    fn parts(e: ApiError) -> (StatusCode, &'static str, &'static str, String) {
        let w = wire(&e);
        (w.status, w.code, w.suffix, w.message)
    }

    #[test]
    fn auth_errors_use_the_coral_suffix() {
        let (status, code, suffix, msg) = parts(ApiError::UnrecognizedClient);
        assert_eq!(
            (status.as_u16(), code, suffix),
            (403, "UnrecognizedClientException", CORAL)
        );
        assert_eq!(
            msg,
            "The security token included in the request is invalid."
        );
        let (_, code, suffix, _) = parts(ApiError::from(SigV4Error::Mismatch("x".into())));
        assert_eq!((code, suffix), ("InvalidSignatureException", CORAL));
    }

    #[test]
    fn model_errors_use_the_bedrock_suffix() {
        let (status, code, suffix, msg) = parts(ApiError::from(GenerationError::InputTooLong {
            prompt_tokens: 9,
            context_tokens: 8,
        }));
        assert_eq!(
            (status.as_u16(), code, suffix),
            (400, "ValidationException", BEDROCK)
        );
        assert_eq!(msg, "Input is too long for requested model.");
        let (status, code, _, msg) = parts(ApiError::from(SubmitError::QueueFull));
        assert_eq!((status.as_u16(), code), (429, "ThrottlingException"));
        assert!(
            msg.contains("requests.  Wait"),
            "two spaces, as Bedrock sends"
        );
    }

    #[test]
    fn internal_details_are_not_shown() {
        let (status, _, _, msg) = parts(ApiError::from(GenerationError::Engine(
            "segfault at 0xdead".into(),
        )));
        assert_eq!(status.as_u16(), 500);
        assert!(!msg.contains("dead"));
    }

    #[test]
    fn malformed_wraps_the_detail() {
        assert_eq!(
            crate::error::malformed("#: required key [max_tokens_to_sample] not found").to_string(),
            "Malformed input request: #: required key [max_tokens_to_sample] not found, please reformat your input and try again."
        );
    }
}
