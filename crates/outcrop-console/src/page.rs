//! What every console page shares: the signed-in session (an extractor), the CSRF check, the
//! page frame's context (navigation shown as the principal's policies allow), rendering, and
//! calling an API operation through the API's own pipeline.

use crate::session::{cookie_value, Session, REGIONS};
use crate::Console;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use outcrop_service::{ApiError, Permissions, Principal};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

/// A request with a live session. Without one, pages redirect to sign-in and anything else
/// (form posts, the playground's calls) gets 401.
pub struct Signed {
    pub id: String,
    pub s: Session,
}

impl FromRequestParts<Console> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Response> {
        let cookie = parts
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok());
        let found = match cookie_value(cookie) {
            Some(id) => c.sessions.get(id).await.map(|s| (id, s)),
            None => None,
        };
        match found {
            Some((id, s)) => Ok(Signed {
                id: id.to_owned(),
                s,
            }),
            None if parts.method == Method::GET => {
                Err(Redirect::to("/console/sign-in").into_response())
            }
            None => Err((StatusCode::UNAUTHORIZED, "Sign in first.").into_response()),
        }
    }
}

/// A form POST from a live session carrying that session's CSRF token: what every console
/// form handler takes, so none can forget the check.
pub struct SignedForm {
    pub signed: Signed,
    pub fields: Vec<(String, String)>,
}

impl FromRequest<Console> for SignedForm {
    type Rejection = Response;

    async fn from_request(request: Request, c: &Console) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let signed = Signed::from_request_parts(&mut parts, c).await?;
        let Form(fields) =
            Form::<Vec<(String, String)>>::from_request(Request::from_parts(parts, body), c)
                .await
                .map_err(IntoResponse::into_response)?;
        signed.check_csrf(field(&fields, "csrf"))?;
        Ok(SignedForm { signed, fields })
    }
}

impl Signed {
    /// The principal the session acts as, in the API's terms.
    pub fn principal(&self) -> Principal {
        Principal {
            account_id: self.s.account_id.clone(),
            arn: self.s.principal_arn.clone(),
            access_key_id: String::new(),
            region: self.s.region.clone(),
        }
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, token: Option<&str>) -> Result<(), Response> {
        let ok: bool = self
            .s
            .csrf
            .as_bytes()
            .ct_eq(token.unwrap_or("").as_bytes())
            .into();
        if ok {
            Ok(())
        } else {
            Err((StatusCode::FORBIDDEN, "The form's CSRF token is not valid.").into_response())
        }
    }
}

/// A field of an urlencoded form kept as pairs (repeated names allowed).
pub fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

pub fn render(c: &Console, status: StatusCode, name: &str, ctx: Value) -> Response {
    match c.templates.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, template = name, "console template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
                .into_response()
        }
    }
}

pub fn unavailable() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "Try again later.").into_response()
}

/// The frame of a page: who is signed in, the region, the CSRF token, and which pages the
/// principal's policies let it use (the others are not shown).
pub async fn frame(
    c: &Console,
    signed: &Signed,
    title: &str,
    page: &str,
) -> Result<Value, Response> {
    let perms = permissions(c, signed).await?;
    let can = |action: &str| perms.allows(action, "*");
    let users = format!("arn:aws:iam::{}:user/*", signed.s.account_id);
    Ok(json!({
        "title": title, "page": page, "principal": signed.s.principal_arn,
        "csrf": signed.s.csrf, "region": signed.s.region, "regions": REGIONS,
        "nav": {
            "models": can("bedrock:ListFoundationModels"),
            "access": can("bedrock:GetFoundationModelAvailability"),
            "playground": invoke_any(c, signed, &perms),
            "usage": can("outcrop:GetUsageReport"),
            "users": perms.allows("iam:ListUsers", &users),
            "settings": can("bedrock:GetModelInvocationLoggingConfiguration"),
        },
    }))
}

/// Whether the policies let the principal invoke at least one catalog model (policies may
/// name model ARNs rather than `*`).
fn invoke_any(c: &Console, signed: &Signed, perms: &Permissions) -> bool {
    c.api.catalog.entries().iter().any(|e| {
        let arn = crate::catalog::model_arn(&signed.s.region, &e.id);
        perms.allows("bedrock:InvokeModelWithResponseStream", &arn)
            || perms.allows("bedrock:InvokeModel", &arn)
    })
}

pub async fn permissions(c: &Console, signed: &Signed) -> Result<Permissions, Response> {
    Permissions::load(&c.api, &signed.principal())
        .await
        .map_err(|_| unavailable())
}

/// An error's HTTP status and message, as the API answers it.
pub fn explained(e: &ApiError) -> (StatusCode, String) {
    let wire = outcrop_api::error::wire(e);
    (wire.status, wire.message)
}

/// The page shown for an error of the service layer: its status and its message (the same
/// text the API gives).
pub async fn refused(c: &Console, signed: &Signed, e: &ApiError) -> Response {
    let outcrop_api::error::Wire {
        status,
        code,
        message,
        ..
    } = outcrop_api::error::wire(e);
    let mut ctx = match frame(c, signed, "Not allowed", "").await {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    ctx["code"] = json!(code);
    ctx["message"] = json!(message);
    render(c, status, "refused.html", ctx)
}

/// Checks that the principal may perform `action` on every resource (`*`), as the API
/// would for the operation of that name.
pub async fn authorize_action(c: &Console, signed: &Signed, action: &str) -> Result<(), Response> {
    let everything = ["*".to_owned()];
    match outcrop_service::iam::authorize_action(&c.api, &signed.principal(), action, &everything)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) => Err(refused(c, signed, &e).await),
    }
}
