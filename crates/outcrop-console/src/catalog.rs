//! The model catalog (filters by provider and output modality) and a model's detail page.
//! Models whose `bedrock:GetFoundationModel` the principal's policies deny are not listed.

use crate::page::{authorize_action, frame, permissions, refused, render, unavailable, Signed};
use crate::Console;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use outcrop_models::CatalogEntry;
use outcrop_service::{AccessStatus, AccountAccess};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
pub struct ModelFilter {
    provider: Option<String>,
    modality: Option<String>,
}

pub fn status_text(status: AccessStatus) -> &'static str {
    match status {
        AccessStatus::Granted => "Access granted",
        AccessStatus::UseCaseMissing => "Use case form needed",
        AccessStatus::Available => "Available to request",
    }
}

pub fn model_arn(region: &str, id: &str) -> String {
    format!("arn:aws:bedrock:{region}::foundation-model/{id}")
}

fn row(e: &CatalogEntry, status: AccessStatus) -> Value {
    json!({
        "id": e.id, "name": e.name, "provider": e.provider,
        "input": e.input_modalities.join(", "), "output": e.output_modalities.join(", "),
        "streaming": e.streaming, "input_price": e.input_price_per_1k,
        "output_price": e.output_price_per_1k, "status": status_text(status),
        "granted": status == AccessStatus::Granted, "lifecycle": e.lifecycle,
    })
}

async fn account_access(c: &Console, signed: &Signed) -> Result<AccountAccess, Response> {
    AccountAccess::load(
        c.api.store.as_ref(),
        &signed.s.account_id,
        c.api.access_mode,
    )
    .await
    .map_err(|_| unavailable())
}

pub async fn models(
    State(c): State<Console>,
    signed: Signed,
    Query(filter): Query<ModelFilter>,
) -> Response {
    if let Err(r) = authorize_action(&c, &signed, "bedrock:ListFoundationModels").await {
        return r;
    }
    let (access, perms) = match (
        account_access(&c, &signed).await,
        permissions(&c, &signed).await,
    ) {
        (Ok(a), Ok(p)) => (a, p),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let entries = c.api.catalog.entries();
    let mut providers: Vec<&str> = entries.iter().map(|e| e.provider.as_str()).collect();
    providers.sort_unstable();
    providers.dedup();
    let provider = filter.provider.filter(|p| !p.is_empty());
    let modality = filter.modality.filter(|m| !m.is_empty());
    let rows: Vec<Value> = entries
        .iter()
        .filter(|e| {
            perms.allows(
                "bedrock:GetFoundationModel",
                &model_arn(&signed.s.region, &e.id),
            )
        })
        .filter(|e| provider.as_ref().is_none_or(|p| &e.provider == p))
        .filter(|e| {
            modality
                .as_ref()
                .is_none_or(|m| e.output_modalities.contains(m))
        })
        .map(|e| row(e, access.status(e)))
        .collect();
    let mut ctx = match frame(&c, &signed, "Model catalog", "models").await {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    ctx["rows"] = json!(rows);
    ctx["providers"] = json!(providers);
    ctx["provider"] = json!(provider);
    ctx["modality"] = json!(modality);
    render(&c, StatusCode::OK, "models.html", ctx)
}

/// GET /console/models/{modelId}
pub async fn model(State(c): State<Console>, signed: Signed, Path(id): Path<String>) -> Response {
    // As GetFoundationModel: the model's ARN (an unknown id is refused below, after IAM).
    let p = signed.principal();
    let resources = match c.api.resolve(&id) {
        Ok(resolved) => outcrop_service::iam::model_arns(&resolved, &p),
        Err(_) => Vec::new(),
    };
    if let Err(e) =
        outcrop_service::iam::authorize_action(&c.api, &p, "bedrock:GetFoundationModel", &resources)
            .await
    {
        return refused(&c, &signed, &e).await;
    }
    let Some(e) = c.api.catalog.get(&id) else {
        let e = outcrop_service::ApiError::ResourceNotFound(format!(
            "Model {id} is not in the catalog."
        ));
        return refused(&c, &signed, &e).await;
    };
    let access = match account_access(&c, &signed).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let limits = c.api.quotas.limits(&e.id);
    let mut ctx = match frame(&c, &signed, &e.name, "models").await {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    ctx["m"] = row(e, access.status(e));
    ctx["arn"] = json!(model_arn(&signed.s.region, &e.id));
    ctx["format"] = json!(e.format);
    ctx["backing_model"] = json!(e.backing_model);
    ctx["on_demand"] = json!(e.on_demand);
    ctx["profiles"] = json!(e
        .inference_profiles
        .iter()
        .map(|g| format!("{g}.{}", e.id))
        .collect::<Vec<_>>());
    ctx["limits"] = json!({
        "rpm": limits.requests_per_minute, "tpm": limits.tokens_per_minute, "tpd": limits.tokens_per_day,
    });
    ctx["invocable"] = json!(
        access.status(e) == AccessStatus::Granted
            && e.output_modalities.iter().any(|m| m == "TEXT")
    );
    render(&c, StatusCode::OK, "model.html", ctx)
}
