//! Settings: quotas per model (limits in force and this account's use now; an operator may
//! change them) and the model invocation logging configuration, read and written through the
//! service as Get/Put/DeleteModelInvocationLoggingConfiguration are, with the same IAM actions.

use crate::page::{authorize_action, explained, field, frame, refused, render, Signed, SignedForm};
use crate::Console;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use outcrop_service::{logging, ApiError, Limits};
use serde_json::{json, Value};

async fn show(c: &Console, signed: &Signed, status: StatusCode, error: Option<String>) -> Response {
    if let Err(r) =
        authorize_action(c, signed, "bedrock:GetModelInvocationLoggingConfiguration").await
    {
        return r;
    }
    let logging = match logging::get_config(&c.api, &signed.principal()).await {
        Ok(config) => config.unwrap_or(Value::Null),
        Err(e) => return refused(c, signed, &e).await,
    };
    let quotas: Vec<Value> = c
        .api
        .catalog
        .entries()
        .iter()
        .map(|e| {
            let l = c.api.quotas.limits(&e.id);
            let (requests, minute_tokens, day_tokens) =
                c.api.quotas.used(&signed.s.account_id, &e.id);
            json!({
                "id": e.id, "rpm": l.requests_per_minute, "tpm": l.tokens_per_minute,
                "tpd": l.tokens_per_day, "requests": requests, "minute_tokens": minute_tokens,
                "day_tokens": day_tokens,
            })
        })
        .collect();
    let mut ctx = match frame(c, signed, "Settings", "settings").await {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    let cfg = &logging;
    ctx["logging"] = json!({
        "enabled": cfg.is_object(),
        "bucket": cfg["s3Config"]["bucketName"], "prefix": cfg["s3Config"]["keyPrefix"],
        "log_group": cfg["cloudWatchConfig"]["logGroupName"],
        "role_arn": cfg["cloudWatchConfig"]["roleArn"],
        "text": cfg["textDataDeliveryEnabled"].as_bool().unwrap_or(true),
        "embedding": cfg["embeddingDataDeliveryEnabled"].as_bool().unwrap_or(true),
    });
    ctx["quotas"] = json!(quotas);
    ctx["error"] = json!(error);
    render(c, status, "settings.html", ctx)
}

pub async fn settings(State(c): State<Console>, signed: Signed) -> Response {
    show(&c, &signed, StatusCode::OK, None).await
}

/// POST /console/settings/logging: `action` = save (with the destination fields) or delete.
pub async fn save_logging(
    State(c): State<Console>,
    SignedForm { signed, fields: f }: SignedForm,
) -> Response {
    let text = |k: &str| field(&f, k).map(str::trim).filter(|v| !v.is_empty());
    let p = signed.principal();
    let result = if field(&f, "action") == Some("delete") {
        if let Err(r) = authorize_action(
            &c,
            &signed,
            "bedrock:DeleteModelInvocationLoggingConfiguration",
        )
        .await
        {
            return r;
        }
        logging::delete_config(&c.api, &p).await
    } else {
        if let Err(r) = authorize_action(
            &c,
            &signed,
            "bedrock:PutModelInvocationLoggingConfiguration",
        )
        .await
        {
            return r;
        }
        let mut cfg = json!({
            "textDataDeliveryEnabled": field(&f, "text").is_some(),
            "embeddingDataDeliveryEnabled": field(&f, "embedding").is_some(),
            "imageDataDeliveryEnabled": false,
        });
        if let Some(bucket) = text("bucket") {
            cfg["s3Config"] =
                json!({ "bucketName": bucket, "keyPrefix": text("prefix").unwrap_or("") });
        }
        if let Some(group) = text("log_group") {
            // Bedrock requires a role; nothing assumes it here, so a blank field gets a name.
            let role = text("role_arn").map(str::to_owned).unwrap_or_else(|| {
                format!("arn:aws:iam::{}:role/outcrop-logging", signed.s.account_id)
            });
            cfg["cloudWatchConfig"] = json!({ "logGroupName": group, "roleArn": role });
        }
        logging::put_config(&c.api, &p, &cfg).await
    };
    match result {
        Ok(()) => Redirect::to("/console/settings").into_response(),
        Err(e) => {
            let (status, message) = explained(&e);
            show(&c, &signed, status, Some(message)).await
        }
    }
}

/// A limit field: blank keeps `current`, `unlimited` lifts the limit, else a whole number.
fn limit(
    f: &[(String, String)],
    name: &str,
    current: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    match field(f, name).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(current),
        Some(v) if v.eq_ignore_ascii_case("unlimited") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::Validation(format!(
                "{v:?} is not a whole number of requests or tokens."
            ))
        }),
    }
}

/// POST /console/settings/quotas: `model`, `rpm`, `tpm`, `tpd`, `action` = save or reset.
pub async fn save_quota(
    State(c): State<Console>,
    SignedForm { signed, fields: f }: SignedForm,
) -> Response {
    let model = field(&f, "model").unwrap_or("");
    let now = c.api.quotas.limits(model);
    let limits = if field(&f, "action") == Some("reset") {
        Ok(None)
    } else {
        (|| {
            Ok(Some(Limits {
                requests_per_minute: limit(&f, "rpm", now.requests_per_minute)?,
                tokens_per_minute: limit(&f, "tpm", now.tokens_per_minute)?,
                tokens_per_day: limit(&f, "tpd", now.tokens_per_day)?,
            }))
        })()
    };
    let result = match limits {
        Ok(l) => outcrop_service::quota::put_limits(&c.api, &signed.principal(), model, l).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to("/console/settings").into_response(),
        Err(e @ ApiError::AccessDenied(_)) => refused(&c, &signed, &e).await,
        Err(e) => {
            let (status, message) = explained(&e);
            show(&c, &signed, status, Some(message)).await
        }
    }
}
