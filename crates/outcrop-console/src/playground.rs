//! The playground: chat (Converse / ConverseStream) and text (the model's own InvokeModel
//! body, streamed with InvokeModelWithResponseStream) modes. The page's script sends the
//! operation's request body to `/console/playground/{operation}/{modelId}`, which runs it
//! through the API's own pipeline (authorization, access, quotas, ledger, invocation logging)
//! and answers exactly what the API answers: the binary event stream, decoded in the browser.

use crate::catalog::model_arn;
use crate::page::{frame, permissions, render, unavailable, Signed};
use crate::Console;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use outcrop_api::Operation;
use outcrop_service::{AccessStatus, AccountAccess};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
pub struct Pick {
    model: Option<String>,
}

pub async fn page(State(c): State<Console>, signed: Signed, Query(pick): Query<Pick>) -> Response {
    let (access, perms) = match (
        AccountAccess::load(
            c.api.store.as_ref(),
            &signed.s.account_id,
            c.api.access_mode,
        )
        .await,
        permissions(&c, &signed).await,
    ) {
        (Ok(a), Ok(p)) => (a, p),
        (_, Err(r)) => return r,
        (Err(_), _) => return unavailable(),
    };
    // Only models this principal can invoke now: text output, served here, access granted,
    // and allowed by its policies (streaming, or plain invoke for models that cannot stream).
    let models: Vec<Value> = c
        .api
        .catalog
        .entries()
        .iter()
        .filter(|e| e.output_modalities.iter().any(|m| m == "TEXT"))
        .filter(|e| c.api.engines.contains_key(&e.backing_model))
        .filter(|e| access.status(e) == AccessStatus::Granted)
        .filter(|e| {
            let action = if e.streaming {
                "bedrock:InvokeModelWithResponseStream"
            } else {
                "bedrock:InvokeModel"
            };
            perms.allows(action, &model_arn(&signed.s.region, &e.id))
        })
        .map(|e| {
            // Models without on-demand throughput are invoked through an inference profile.
            let invoke_id = match (e.on_demand, e.inference_profiles.first()) {
                (false, Some(geo)) => format!("{geo}.{}", e.id),
                _ => e.id.clone(),
            };
            json!({
                "id": e.id, "invoke_id": invoke_id, "name": e.name, "provider": e.provider,
                "format": e.format, "streaming": e.streaming,
                "input_price": e.input_price_per_1k, "output_price": e.output_price_per_1k,
                "selected": pick.model.as_deref() == Some(e.id.as_str()),
            })
        })
        .collect();
    let mut ctx = match frame(&c, &signed, "Playground", "playground").await {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    ctx["models"] = json!(models);
    render(&c, StatusCode::OK, "playground.html", ctx)
}

/// POST /console/playground/{operation}/{modelId}: the body is the operation's own request
/// body; the CSRF token comes in `X-CSRF-Token` (the script sends JSON, not a form).
pub async fn run(
    State(c): State<Console>,
    signed: Signed,
    Path((operation, identifier)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if let Err(r) = signed.check_csrf(token) {
        return r;
    }
    let op = match operation.as_str() {
        "converse" => Operation::Converse { identifier },
        "converse-stream" => Operation::ConverseStream { identifier },
        "invoke" => Operation::InvokeModel { identifier },
        "invoke-with-response-stream" => Operation::InvokeModelWithResponseStream { identifier },
        _ => return (StatusCode::NOT_FOUND, "No such playground operation.").into_response(),
    };
    outcrop_api::call(&c.api, &signed.principal(), op, "", &body).await
}
