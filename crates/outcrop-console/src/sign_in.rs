//! Signing in with an access key pair, signing out, and the region selector.

use crate::page::{field, render, unavailable, SignedForm};
use crate::session::COOKIE;
use crate::Console;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use outcrop_service::Origin;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

pub async fn home(State(c): State<Console>, headers: HeaderMap) -> Response {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let signed_in = match crate::session::cookie_value(cookie) {
        Some(id) => c.sessions.get(id).await.is_some(),
        None => false,
    };
    Redirect::to(if signed_in {
        "/console/models"
    } else {
        "/console/sign-in"
    })
    .into_response()
}

pub async fn sign_in_form(State(c): State<Console>) -> Response {
    render(
        &c,
        StatusCode::OK,
        "sign_in.html",
        json!({ "title": "Sign in" }),
    )
}

#[derive(Deserialize)]
pub struct SignIn {
    access_key_id: String,
    secret_access_key: String,
}

pub async fn sign_in(
    State(c): State<Console>,
    origin: Option<Extension<Origin>>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let origin = origin.map(|Extension(o)| o);
    let refused = |c: &Console| {
        render(
            c,
            StatusCode::UNAUTHORIZED,
            "sign_in.html",
            json!({ "title": "Sign in", "error": "The access key ID or secret access key is not valid." }),
        )
    };
    let credential = match c.api.store.credential(form.access_key_id.trim()).await {
        Ok(Some(cred)) => cred,
        Ok(None) => return refused(&c),
        Err(e) => {
            tracing::error!(error = %e, "console sign-in could not read the store");
            return unavailable();
        }
    };
    if !c.api.auth.admits(&credential, origin.as_ref(), &headers) {
        return refused(&c);
    }
    let matches: bool = credential
        .secret
        .expose()
        .as_bytes()
        .ct_eq(form.secret_access_key.as_bytes())
        .into();
    if !matches {
        return refused(&c);
    }
    let id = match c
        .sessions
        .create(
            &credential.account_id,
            &credential.principal_arn,
            &credential.access_key_id,
        )
        .await
    {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "console sign-in could not record the session");
            return unavailable();
        }
    };
    tracing::info!(principal = %credential.principal_arn, "console sign-in");
    redirect_setting_cookie(
        "/console/models",
        &format!("{COOKIE}={id}"),
        origin.as_ref(),
    )
}

/// A 303 to `location` that sets the session cookie (`value` is `name=value[; attributes]`),
/// `Secure` when the request came over TLS.
fn redirect_setting_cookie(location: &str, value: &str, origin: Option<&Origin>) -> Response {
    let secure = if origin.is_some_and(|o| o.tls) {
        "; Secure"
    } else {
        ""
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location.to_owned()),
            (
                header::SET_COOKIE,
                format!("{value}; HttpOnly; SameSite=Strict; Path=/console{secure}"),
            ),
        ],
    )
        .into_response()
}

pub async fn sign_out(
    State(c): State<Console>,
    origin: Option<Extension<Origin>>,
    SignedForm { signed, .. }: SignedForm,
) -> Response {
    c.sessions.end(&signed.id).await;
    let origin = origin.map(|Extension(o)| o);
    redirect_setting_cookie(
        "/console/sign-in",
        &format!("{COOKIE}=; Max-Age=0"),
        origin.as_ref(),
    )
}

/// POST /console/region: the region selector (`region`, and `back`, a console path).
pub async fn set_region(
    State(c): State<Console>,
    SignedForm { signed, fields }: SignedForm,
) -> Response {
    let region = field(&fields, "region").unwrap_or("");
    if !c.sessions.set_region(&signed.id, region).await {
        return (StatusCode::BAD_REQUEST, "That region is not offered.").into_response();
    }
    // Only console paths: never an open redirect.
    let back = field(&fields, "back")
        .filter(|b| b.starts_with("/console/") && !b.contains("//"))
        .unwrap_or("/console/models");
    Redirect::to(back).into_response()
}
