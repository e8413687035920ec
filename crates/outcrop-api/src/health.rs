use crate::ApiState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use outcrop_engine::LoadState;
use serde_json::{json, Value};
use std::sync::Arc;

/// `GET /_outcrop/health`: every backing model with its state (`unloaded`, `loading`, `ready`,
/// `failed`; `upstream` for one served by an upstream Bedrock endpoint or a recording) and, once loaded, its engine's figures. 200 while every model serves or can load
/// on demand; 503 when one is starting at start-up or has failed, naming it.
pub async fn health(State(state): State<Arc<ApiState>>) -> (StatusCode, Json<Value>) {
    let mut models = Vec::new();
    let mut failed = Vec::new();
    for (name, handle) in &state.engines {
        let load = handle.load_state();
        let mut m = json!({ "name": name, "state": load.as_str() });
        if let Some(bytes) = handle.memory() {
            m["memory_bytes"] = json!(bytes);
        }
        if let Some(info) = handle.model() {
            let g = handle.gauges();
            m["context_tokens"] = json!(info.context_tokens);
            m["kv_tokens"] = json!(info.kv_tokens);
            m["parallel"] = json!(info.max_sequences);
            m["active_sequences"] = json!(g.active_sequences);
            m["waiting"] = json!(g.waiting);
            if g.endpoints > 0 {
                m["endpoints"] = json!(g.endpoints);
                m["healthy_endpoints"] = json!(g.healthy_endpoints);
            }
        }
        if load == LoadState::Failed {
            failed.push(name.clone());
        }
        models.push(m);
    }
    // Imported models invoked so far, by ARN; a failed one is reported, not a reason to take
    // the gateway out of service.
    for imported in state.imported.all() {
        let engine = &imported.engine;
        let mut m = json!({ "name": imported.entry.id, "state": engine.load_state().as_str() });
        if let Some(bytes) = engine.memory() {
            m["memory_bytes"] = json!(bytes);
        }
        models.push(m);
    }
    for (name, relay) in &state.relays {
        models.push(json!({
            "name": name,
            "state": "upstream",
            "upstream": relay.upstream.describe(),
        }));
    }
    models.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    if failed.is_empty() {
        return (
            StatusCode::OK,
            Json(json!({ "status": "ok", "models": models })),
        );
    }
    failed.sort();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "degraded", "failed": failed, "models": models })),
    )
}
