use crate::ApiState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// `GET /_outcrop/health`: 200 with the loaded models once every engine serves, else 503.
pub async fn health(State(state): State<Arc<ApiState>>) -> (StatusCode, Json<Value>) {
    let mut models = Vec::new();
    let mut ready = true;
    for (name, handle) in &state.engines {
        match handle.model() {
            Some(info) => models.push(json!({
                "name": name,
                "context_tokens": info.context_tokens,
                "kv_tokens": info.kv_tokens,
                "parallel": info.max_sequences,
                "active_sequences": handle.gauges().active_sequences,
                "waiting": handle.gauges().waiting,
            })),
            None => ready = false,
        }
    }
    models.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if ready { "ok" } else { "starting" }, "models": models })),
    )
}
