//! Users and keys: users with their access keys and inline policies; create a user or a key
//! (the secret is shown once), delete either, attach a policy. Every action goes through
//! `outcrop_service::identities`, authorized with IAM's action names.

use crate::page::{explained, field, frame, refused, render, unavailable, Signed, SignedForm};
use crate::Console;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use outcrop_service::{api_keys, identities};
use serde_json::json;

async fn list(c: &Console, signed: &Signed, status: StatusCode, error: Option<String>) -> Response {
    let p = signed.principal();
    // Users first: a principal without iam:ListUsers is told about that action.
    let listed = match identities::list_users(&c.api, &p).await {
        Ok(users) => match identities::list_access_keys(&c.api, &p).await {
            Ok(keys) => api_keys::list(&c.api, &p, None)
                .await
                .map(|api| (users, keys, api)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let (users, keys, api) = match listed {
        Ok(both) => both,
        Err(e @ outcrop_service::ApiError::AccessDenied(_)) => return refused(c, signed, &e).await,
        Err(_) => return unavailable(),
    };
    let mut rows = Vec::new();
    for u in &users {
        let Ok(policies) = identities::user_policies(&c.api, &p, &u.user_name).await else {
            return unavailable();
        };
        let keys: Vec<_> = keys
            .iter()
            .filter(|k| k.principal_arn == u.arn)
            .map(|k| json!({ "id": k.access_key_id, "created": k.created_at }))
            .collect();
        let api_keys: Vec<_> = api
            .iter()
            .filter(|k| k.user_name == u.user_name)
            .map(|k| {
                json!({
                    "id": k.credential_id, "alias": k.alias, "active": k.active,
                    "expires": k.expires_at.as_deref().map(|t| &t[..10.min(t.len())]),
                })
            })
            .collect();
        rows.push(json!({
            "name": u.user_name, "arn": u.arn, "created": u.created_at, "keys": keys,
            "api_keys": api_keys,
            "policies": policies.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        }));
    }
    let root_keys: Vec<_> = keys
        .iter()
        .filter(|k| !users.iter().any(|u| u.arn == k.principal_arn))
        .map(|k| json!({ "id": k.access_key_id, "principal": k.principal_arn, "loopback_only": k.loopback_only }))
        .collect();
    let mut ctx = match frame(c, signed, "Users and keys", "users").await {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    ctx["users"] = json!(rows);
    ctx["root_keys"] = json!(root_keys);
    ctx["error"] = json!(error);
    ctx["default_policy"] = json!(identities::DEFAULT_POLICY);
    render(c, status, "users.html", ctx)
}

pub async fn users(State(c): State<Console>, signed: Signed) -> Response {
    list(&c, &signed, StatusCode::OK, None).await
}

/// Back to the list after an action, or the list with the action's error.
async fn done(
    c: &Console,
    signed: &Signed,
    result: Result<(), outcrop_service::ApiError>,
) -> Response {
    match result {
        Ok(()) => Redirect::to("/console/users").into_response(),
        Err(e) => {
            let (status, message) = explained(&e);
            list(c, signed, status, Some(message)).await
        }
    }
}

/// POST /console/users: `name`, `default_policy` (checkbox).
pub async fn create_user(
    State(c): State<Console>,
    SignedForm { signed, fields: f }: SignedForm,
) -> Response {
    let name = field(&f, "name").unwrap_or("").trim();
    let default_policy = field(&f, "default_policy").is_some();
    let result = identities::create_user(&c.api, &signed.principal(), name, default_policy).await;
    done(&c, &signed, result.map(|_| ())).await
}

pub async fn delete_user(
    State(c): State<Console>,
    Path(name): Path<String>,
    SignedForm { signed, .. }: SignedForm,
) -> Response {
    let result = identities::delete_user(&c.api, &signed.principal(), &name).await;
    done(&c, &signed, result).await
}

/// POST /console/users/{name}/keys: the new key pair, its secret shown this once.
pub async fn create_key(
    State(c): State<Console>,
    Path(name): Path<String>,
    SignedForm { signed, .. }: SignedForm,
) -> Response {
    match identities::create_access_key(&c.api, &signed.principal(), &name).await {
        Ok(key) => {
            let mut ctx = match frame(&c, &signed, "Access key created", "users").await {
                Ok(ctx) => ctx,
                Err(r) => return r,
            };
            ctx["user"] = json!(name);
            ctx["access_key_id"] = json!(key.access_key_id);
            ctx["secret_access_key"] = json!(key.secret.expose());
            render(&c, StatusCode::OK, "key_created.html", ctx)
        }
        Err(e) => done(&c, &signed, Err(e)).await,
    }
}

/// POST /console/users/{name}/api-keys: `expires_in_days` (empty: never); the new Bedrock
/// API key, shown this once.
pub async fn create_api_key(
    State(c): State<Console>,
    Path(name): Path<String>,
    SignedForm { signed, fields: f }: SignedForm,
) -> Response {
    let days = field(&f, "expires_in_days").unwrap_or("").trim();
    let lifetime = match days {
        "" => None,
        days => match days.parse::<i64>() {
            Ok(d) => Some(d),
            Err(_) => {
                let e = outcrop_service::ApiError::Validation(
                    "CredentialAgeDays must be between 1 and 36600.".into(),
                );
                return done(&c, &signed, Err(e)).await;
            }
        },
    };
    match api_keys::create(&c.api, &signed.principal(), &name, lifetime).await {
        Ok(key) => {
            let mut ctx = match frame(&c, &signed, "Bedrock API key created", "users").await {
                Ok(ctx) => ctx,
                Err(r) => return r,
            };
            ctx["user"] = json!(name);
            ctx["api_key"] = json!(key.key);
            ctx["alias"] = json!(key.record.alias);
            ctx["expires"] = json!(key.record.expires_at);
            render(&c, StatusCode::OK, "key_created.html", ctx)
        }
        Err(e) => done(&c, &signed, Err(e)).await,
    }
}

/// POST /console/api-keys/{id}/delete: revokes a Bedrock API key.
pub async fn delete_api_key(
    State(c): State<Console>,
    Path(id): Path<String>,
    SignedForm { signed, .. }: SignedForm,
) -> Response {
    let result = api_keys::delete(&c.api, &signed.principal(), &id).await;
    done(&c, &signed, result).await
}

pub async fn delete_key(
    State(c): State<Console>,
    Path(id): Path<String>,
    SignedForm { signed, .. }: SignedForm,
) -> Response {
    let result = identities::delete_access_key(&c.api, &signed.principal(), &id).await;
    done(&c, &signed, result).await
}

/// POST /console/users/{name}/policies: `policy_name`, `document`.
pub async fn put_policy(
    State(c): State<Console>,
    Path(name): Path<String>,
    SignedForm { signed, fields: f }: SignedForm,
) -> Response {
    let policy_name = field(&f, "policy_name").unwrap_or("").trim();
    let document = field(&f, "document").unwrap_or("");
    let result =
        identities::put_user_policy(&c.api, &signed.principal(), &name, policy_name, document)
            .await;
    done(&c, &signed, result).await
}
