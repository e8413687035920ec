//! Bedrock's Anthropic surface, `POST /anthropic/v1/messages`: Anthropic's own Messages API.
//! The body is the Messages body Bedrock's InvokeModel takes, with `model` and `stream` in it
//! and the version and betas in headers; it is rewritten into the InvokeModel body once, and
//! then runs as InvokeModel on a Claude model does. Streams are the same chunks, as
//! server-sent events; errors are written in Anthropic's shape.

use crate::error::wire;
use crate::ApiError;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

/// The body as InvokeModel takes it: without `model` and `stream`, with Bedrock's
/// `anthropic_version`, and the `anthropic-beta` header's values as `anthropic_beta`. A body
/// that is not a JSON object is passed on for the Messages parser to refuse.
pub(crate) fn invoke_body(headers: &HeaderMap, body: &Bytes) -> Bytes {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else {
        return body.clone();
    };
    map.remove("model");
    map.remove("stream");
    map.insert("anthropic_version".into(), json!("bedrock-2023-05-31"));
    let betas: Vec<String> = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty())
        .collect();
    if !betas.is_empty() {
        map.insert("anthropic_beta".into(), json!(betas));
    }
    Bytes::from(Value::Object(map).to_string())
}

/// Anthropic's error `type` for a status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

fn error_body(error: &ApiError) -> (StatusCode, Value) {
    let w = wire(error);
    let body = json!({
        "type": "error",
        "error": { "type": error_type(w.status), "message": w.message },
    });
    (w.status, body)
}

pub(crate) fn error_response(error: &ApiError) -> Response {
    let (status, body) = error_body(error);
    tracing::info!(
        code = wire(error).code,
        status = status.as_u16(),
        "request refused (Anthropic surface)"
    );
    crate::json_response(status, body)
}

/// The `error` event that ends a stream that failed after it began.
pub(crate) fn stream_failure(error: &ApiError) -> Bytes {
    Bytes::from(format!("event: error\ndata: {}\n\n", error_body(error).1))
}

/// Only Claude's Messages models are served on this path, as on Bedrock.
pub(crate) fn not_on_this_route(model: &str) -> ApiError {
    ApiError::Validation(format!("model `{model}` isn't supported on this route"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_becomes_an_invoke_model_body() {
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-beta", "a-2025-01-01, b".parse().unwrap());
        let body = Bytes::from_static(
            br#"{"model": "m", "stream": true, "max_tokens": 5, "messages": []}"#,
        );
        let out: Value = serde_json::from_slice(&invoke_body(&headers, &body)).unwrap();
        assert_eq!(
            out,
            json!({"anthropic_version": "bedrock-2023-05-31", "anthropic_beta": ["a-2025-01-01", "b"], "max_tokens": 5, "messages": []})
        );
        let junk = Bytes::from_static(b"[1]");
        assert_eq!(invoke_body(&headers, &junk), junk);
    }

    #[test]
    fn errors_are_in_anthropic_shape() {
        let (status, body) = error_body(&ApiError::Throttling("slow down".into()));
        assert_eq!(status.as_u16(), 429);
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["type"], "error");
    }
}
