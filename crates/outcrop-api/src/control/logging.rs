//! Put/Get/DeleteModelInvocationLoggingConfiguration on the wire.

use crate::converse::request::not_null;
use crate::{json_response, ApiError};
use axum::http::StatusCode;
use axum::response::Response;
use outcrop_service::{logging, Principal, Service};
use serde_json::{json, Value};

/// `PUT /logging/modelinvocations`.
pub async fn put_config(
    state: &Service,
    principal: &Principal,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::Validation("The request body must be a JSON object.".into()))?;
    let raw = body
        .get("loggingConfig")
        .ok_or_else(|| not_null("loggingConfig"))?;
    logging::put_config(state, principal, raw).await?;
    Ok(json_response(StatusCode::OK, json!({})))
}

/// `GET /logging/modelinvocations`.
pub async fn get_config(state: &Service, principal: &Principal) -> Result<Response, ApiError> {
    let body = match logging::get_config(state, principal).await? {
        Some(config) => json!({ "loggingConfig": config }),
        None => json!({}),
    };
    Ok(json_response(StatusCode::OK, body))
}

/// `DELETE /logging/modelinvocations`.
pub async fn delete_config(state: &Service, principal: &Principal) -> Result<Response, ApiError> {
    logging::delete_config(state, principal).await?;
    Ok(json_response(StatusCode::OK, json!({})))
}
