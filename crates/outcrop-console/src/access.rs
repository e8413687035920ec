//! Model access: the list with an Edit form; Anthropic selections open the use-case form
//! first. Grants go through the same service functions as the control plane
//! (`agree`, `submit_use_case`), authorized as the matching Bedrock operations.

use crate::catalog::status_text;
use crate::page::{
    authorize_action, field, frame, refused, render, unavailable, Signed, SignedForm,
};
use crate::Console;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use outcrop_service::{AccessStatus, AccountAccess};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, Default)]
pub struct Saved {
    /// Model ids just granted (comma-separated), for the notification banner.
    granted: Option<String>,
}

pub async fn access(
    State(c): State<Console>,
    signed: Signed,
    Query(saved): Query<Saved>,
) -> Response {
    if let Err(r) = authorize_action(&c, &signed, "bedrock:GetFoundationModelAvailability").await {
        return r;
    }
    let Ok(access) = AccountAccess::load(
        c.api.store.as_ref(),
        &signed.s.account_id,
        c.api.access_mode,
    )
    .await
    else {
        return unavailable();
    };
    let rows: Vec<_> = c
        .api
        .catalog
        .entries()
        .iter()
        .map(|e| {
            let status = access.status(e);
            json!({
                "id": e.id, "name": e.name, "provider": e.provider,
                "granted": status == AccessStatus::Granted,
                "needs_form": outcrop_service::access::needs_use_case(e) && !access.use_case_on_file(),
                "status": status_text(status),
            })
        })
        .collect();
    let mut ctx = match frame(&c, &signed, "Model access", "access").await {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    ctx["rows"] = json!(rows);
    // Only ids of the catalog that are granted now: the query string cannot make up a banner.
    let granted: Vec<_> = saved
        .granted
        .unwrap_or_default()
        .split(',')
        .filter_map(|id| c.api.catalog.get(id))
        .filter(|e| access.status(e) == AccessStatus::Granted)
        .map(|e| json!({ "id": e.id, "name": e.name }))
        .collect();
    ctx["granted"] = json!(granted);
    render(&c, StatusCode::OK, "access.html", ctx)
}

/// POST /console/access: the Edit form (`csrf`, `model` repeated), and the use-case form's
/// fields when it was shown.
pub async fn save_access(
    State(c): State<Console>,
    SignedForm { signed, fields }: SignedForm,
) -> Response {
    if let Err(r) = authorize_action(&c, &signed, "bedrock:CreateFoundationModelAgreement").await {
        return r;
    }
    let field = |k: &str| field(&fields, k);
    let models: Vec<&str> = fields
        .iter()
        .filter(|(n, _)| n == "model")
        .map(|(_, v)| v.as_str())
        .collect();
    let entries: Vec<_> = models.iter().filter_map(|m| c.api.catalog.get(m)).collect();
    let has_form = matches!(
        c.api.store.use_case(&signed.s.account_id).await,
        Ok(Some(_))
    );
    let wants_form = entries
        .iter()
        .any(|e| outcrop_service::access::needs_use_case(e))
        && !has_form;
    let p = signed.principal();
    if field("companyName").is_some() {
        let form = json!({
            "companyName": field("companyName").unwrap_or(""),
            "companyWebsite": field("companyWebsite").unwrap_or(""),
            "intendedUsers": field("intendedUsers").unwrap_or(""),
            "industryOption": field("industryOption").unwrap_or(""),
            "otherIndustryOption": "",
            "useCases": field("useCases").unwrap_or(""),
        });
        let complete = [
            "companyName",
            "companyWebsite",
            "industryOption",
            "useCases",
        ]
        .iter()
        .all(|k| form[k].as_str().is_some_and(|v| !v.trim().is_empty()));
        if !complete {
            return use_case_page(
                &c,
                &signed,
                &models,
                Some("Fill in every field of the form."),
            )
            .await;
        }
        if let Err(r) = authorize_action(&c, &signed, "bedrock:PutUseCaseForModelAccess").await {
            return r;
        }
        if let Err(e) =
            outcrop_service::access::submit_use_case(&c.api, &p, form.to_string().as_bytes()).await
        {
            return refused(&c, &signed, &e).await;
        }
    } else if wants_form {
        return use_case_page(&c, &signed, &models, None).await;
    }
    for e in &entries {
        if let Err(err) = outcrop_service::access::agree(&c.api, &p, e).await {
            tracing::error!(error = %err, model = %e.id, "console could not grant access");
            return unavailable();
        }
    }
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("granted", &ids.join(","))
        .finish();
    Redirect::to(&format!("/console/access?{query}")).into_response()
}

/// The use-case form, carrying the selected models along.
async fn use_case_page(
    c: &Console,
    signed: &Signed,
    models: &[&str],
    error: Option<&str>,
) -> Response {
    let mut ctx = match frame(c, signed, "Use case details", "access").await {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    ctx["models"] = json!(models);
    ctx["error"] = json!(error);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(c, status, "use_case.html", ctx)
}
