//! Console pages. Every page but sign-in needs a session; every form POST carries the
//! session's CSRF token.

use crate::session::{cookie_value, Session, COOKIE};
use crate::Console;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use outcrop_api::AccessMode;
use outcrop_store::DEFAULT_ACCOUNT;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

fn session(c: &Console, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = cookie_value(headers.get(header::COOKIE).and_then(|v| v.to_str().ok()))?;
    c.sessions.get(id).map(|s| (id.to_owned(), s))
}

fn render(c: &Console, status: StatusCode, name: &str, ctx: serde_json::Value) -> Response {
    match c.templates.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, Html(html)).into_response(),
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

pub async fn home(State(c): State<Console>, headers: HeaderMap) -> Response {
    match session(&c, &headers) {
        Some(_) => Redirect::to("/console/models").into_response(),
        None => Redirect::to("/console/sign-in").into_response(),
    }
}

pub async fn sign_in_form(State(c): State<Console>) -> Response {
    render(&c, StatusCode::OK, "sign_in.html", json!({}))
}

#[derive(Deserialize)]
pub struct SignIn {
    access_key_id: String,
    secret_access_key: String,
}

pub async fn sign_in(State(c): State<Console>, Form(form): Form<SignIn>) -> Response {
    let refused = |c: &Console| {
        render(
            c,
            StatusCode::UNAUTHORIZED,
            "sign_in.html",
            json!({ "error": "The access key ID or secret access key is not valid." }),
        )
    };
    let credential = match c.api.store.credential(form.access_key_id.trim()).await {
        Ok(Some(cred)) => cred,
        Ok(None) => return refused(&c),
        Err(e) => {
            tracing::error!(error = %e, "console sign-in could not read the store");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Try again later.").into_response();
        }
    };
    let policy = c.api.auth;
    if credential.loopback_only && !policy.loopback_only && !policy.allow_dev_key_anywhere {
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
    let id = c
        .sessions
        .create(&credential.account_id, &credential.principal_arn);
    tracing::info!(principal = %credential.principal_arn, "console sign-in");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console/models".to_owned()),
            (
                header::SET_COOKIE,
                format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/console"),
            ),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn sign_out(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some((id, s)) = session(&c, &headers) else {
        return Redirect::to("/console/sign-in").into_response();
    };
    if !bool::from(s.csrf.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return (StatusCode::FORBIDDEN, "The form's CSRF token is not valid.").into_response();
    }
    c.sessions.end(&id);
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console/sign-in".to_owned()),
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0"),
            ),
        ],
    )
        .into_response()
}

#[derive(Deserialize, Default)]
pub struct ModelFilter {
    provider: Option<String>,
    modality: Option<String>,
}

pub async fn models(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(filter): Query<ModelFilter>,
) -> Response {
    let Some((_, s)) = session(&c, &headers) else {
        return Redirect::to("/console/sign-in").into_response();
    };
    let (agreements, use_case) = match (
        c.api.store.agreements(&s.account_id).await,
        c.api.store.use_case(&s.account_id).await,
    ) {
        (Ok(a), Ok(u)) => (a, u.is_some()),
        _ => return (StatusCode::INTERNAL_SERVER_ERROR, "Try again later.").into_response(),
    };
    let open = c.api.access_mode == AccessMode::Open;
    let entries = c.api.catalog.entries();
    let mut providers: Vec<&str> = entries.iter().map(|e| e.provider.as_str()).collect();
    providers.sort_unstable();
    providers.dedup();
    let provider = filter.provider.filter(|p| !p.is_empty());
    let modality = filter.modality.filter(|m| !m.is_empty());
    let rows: Vec<serde_json::Value> = entries
        .iter()
        .filter(|e| provider.as_ref().is_none_or(|p| &e.provider == p))
        .filter(|e| {
            modality
                .as_ref()
                .is_none_or(|m| e.output_modalities.contains(m))
        })
        .map(|e| {
            let agreed = open || agreements.contains(&e.id);
            let status = match (agreed, !open && outcrop_api::needs_use_case(e) && !use_case) {
                (true, false) => "Access granted",
                (true, true) => "Use case form needed",
                (false, _) => "Available to request",
            };
            json!({
                "id": e.id, "name": e.name, "provider": e.provider,
                "input": e.input_modalities.join(", "), "output": e.output_modalities.join(", "),
                "streaming": e.streaming, "input_price": e.input_price_per_1k,
                "output_price": e.output_price_per_1k, "status": status,
                "granted": status == "Access granted",
            })
        })
        .collect();
    let region = "us-east-1";
    render(
        &c,
        StatusCode::OK,
        "models.html",
        json!({
            "title": "Model catalog", "page": "models", "principal": s.principal_arn,
            "account": if s.account_id.is_empty() { DEFAULT_ACCOUNT.to_owned() } else { s.account_id.clone() },
            "csrf": s.csrf, "region": region, "rows": rows, "providers": providers,
            "provider": provider, "modality": modality,
        }),
    )
}

/// The principal a session acts as, in the API's terms.
fn principal(s: &Session) -> outcrop_api::Principal {
    outcrop_api::Principal {
        account_id: s.account_id.clone(),
        arn: s.principal_arn.clone(),
        access_key_id: String::new(),
        region: "us-east-1".into(),
    }
}

/// Model access rows: every catalog model with its status.
async fn access_rows(c: &Console, s: &Session) -> Result<(Vec<serde_json::Value>, bool), Response> {
    let (agreements, use_case) = match (
        c.api.store.agreements(&s.account_id).await,
        c.api.store.use_case(&s.account_id).await,
    ) {
        (Ok(a), Ok(u)) => (a, u.is_some()),
        _ => return Err((StatusCode::INTERNAL_SERVER_ERROR, "Try again later.").into_response()),
    };
    let open = c.api.access_mode == AccessMode::Open;
    let rows = c
        .api
        .catalog
        .entries()
        .iter()
        .map(|e| {
            let agreed = open || agreements.contains(&e.id);
            let needs_form = outcrop_api::needs_use_case(e);
            let granted = agreed && (open || !needs_form || use_case);
            json!({
                "id": e.id, "name": e.name, "provider": e.provider,
                "granted": granted, "needs_form": needs_form && !use_case,
            })
        })
        .collect();
    Ok((rows, use_case))
}

fn page_context(s: &Session, title: &str, page: &str) -> serde_json::Value {
    json!({ "title": title, "page": page, "principal": s.principal_arn, "csrf": s.csrf, "region": "us-east-1" })
}

pub async fn access(State(c): State<Console>, headers: HeaderMap) -> Response {
    let Some((_, s)) = session(&c, &headers) else {
        return Redirect::to("/console/sign-in").into_response();
    };
    let (rows, _) = match access_rows(&c, &s).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut ctx = page_context(&s, "Model access", "access");
    ctx["rows"] = json!(rows);
    render(&c, StatusCode::OK, "access.html", ctx)
}

/// POST /console/access: the Edit form (`csrf`, `model` repeated). Anthropic models need the
/// use-case form first: then the form page is shown with the selection carried along.
pub async fn save_access(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let Some((_, s)) = session(&c, &headers) else {
        return Redirect::to("/console/sign-in").into_response();
    };
    let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if !bool::from(
        s.csrf
            .as_bytes()
            .ct_eq(field("csrf").unwrap_or("").as_bytes()),
    ) {
        return (StatusCode::FORBIDDEN, "The form's CSRF token is not valid.").into_response();
    }
    let models: Vec<&str> = fields
        .iter()
        .filter(|(n, _)| n == "model")
        .map(|(_, v)| v.as_str())
        .collect();
    let entries: Vec<_> = models.iter().filter_map(|m| c.api.catalog.get(m)).collect();
    let has_form = matches!(c.api.store.use_case(&s.account_id).await, Ok(Some(_)));
    let wants_form = entries.iter().any(|e| outcrop_api::needs_use_case(e)) && !has_form;
    let p = principal(&s);
    if let Some(form) = field("companyName").map(|_| {
        json!({
            "companyName": field("companyName").unwrap_or(""),
            "companyWebsite": field("companyWebsite").unwrap_or(""),
            "intendedUsers": field("intendedUsers").unwrap_or(""),
            "industryOption": field("industryOption").unwrap_or(""),
            "otherIndustryOption": "",
            "useCases": field("useCases").unwrap_or(""),
        })
    }) {
        let complete = [
            "companyName",
            "companyWebsite",
            "industryOption",
            "useCases",
        ]
        .iter()
        .all(|k| form[k].as_str().is_some_and(|v| !v.trim().is_empty()));
        if !complete {
            let mut ctx = page_context(&s, "Use case details", "access");
            ctx["models"] = json!(models);
            ctx["error"] = json!("Fill in every field of the form.");
            return render(&c, StatusCode::BAD_REQUEST, "use_case.html", ctx);
        }
        if let Err(e) = outcrop_api::submit_use_case(&c.api, &p, form.to_string().as_bytes()).await
        {
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    } else if wants_form {
        let mut ctx = page_context(&s, "Use case details", "access");
        ctx["models"] = json!(models);
        return render(&c, StatusCode::OK, "use_case.html", ctx);
    }
    for e in entries {
        if let Err(err) = outcrop_api::agree(&c.api, &p, e).await {
            tracing::error!(error = %err, model = %e.id, "console could not grant access");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Try again later.").into_response();
        }
    }
    Redirect::to("/console/access").into_response()
}

#[derive(Deserialize, Default)]
pub struct Period {
    since: Option<String>,
    until: Option<String>,
}

/// A date (YYYY-MM-DD) as the ledger's lower time bound, or `None` when absent or not a date.
fn day_bound(v: &Option<String>) -> Option<String> {
    let v = v.as_deref()?.trim();
    let ok = v.len() == 10
        && v.chars().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    ok.then(|| format!("{v}T00:00:00.000Z"))
}

async fn usage_report(
    c: &Console,
    s: &Session,
    period: &Period,
) -> Result<Vec<outcrop_store::UsageRecord>, Response> {
    c.api
        .store
        .usage_records(
            Some(&s.account_id),
            day_bound(&period.since).as_deref(),
            day_bound(&period.until).as_deref(),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "console could not read the ledger");
            (StatusCode::INTERNAL_SERVER_ERROR, "Try again later.").into_response()
        })
}

pub async fn usage(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(period): Query<Period>,
) -> Response {
    let Some((_, s)) = session(&c, &headers) else {
        return Redirect::to("/console/sign-in").into_response();
    };
    let records = match usage_report(&c, &s, &period).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let by_model = outcrop_store::report(&records, outcrop_store::GroupBy::Model);
    let by_day = outcrop_store::report(&records, outcrop_store::GroupBy::Day);
    let max_cost = by_day
        .rows
        .values()
        .map(|t| t.cost_usd)
        .max()
        .unwrap_or_default();
    // Bars of the daily cost chart, as percentages of the largest day (server-rendered SVG).
    let bars: Vec<serde_json::Value> = by_day
        .rows
        .iter()
        .enumerate()
        .map(|(i, (day, t))| {
            let pct = if max_cost.is_zero() {
                0.0
            } else {
                (t.cost_usd / max_cost)
                    .to_string()
                    .parse::<f64>()
                    .unwrap_or(0.0)
                    * 100.0
            };
            json!({ "day": day, "x": i * 40 + 10, "h": pct.round(), "y": 110.0 - pct.round(),
                    "cost": t.cost_usd.normalize().to_string() })
        })
        .collect();
    let mut ctx = page_context(&s, "Usage and cost", "usage");
    ctx["models"] = by_model.to_json(outcrop_store::GroupBy::Model)["rows"].clone();
    ctx["days"] = by_day.to_json(outcrop_store::GroupBy::Day)["rows"].clone();
    ctx["total"] = by_model.total.to_json().into();
    ctx["bars"] = json!(bars);
    ctx["chart_width"] = json!(by_day.rows.len() * 40 + 20);
    ctx["since"] = json!(period.since.clone().unwrap_or_default());
    ctx["until"] = json!(period.until.clone().unwrap_or_default());
    render(&c, StatusCode::OK, "usage.html", ctx)
}

/// The usage table by model as CSV, for the period given.
pub async fn usage_csv(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(period): Query<Period>,
) -> Response {
    let Some((_, s)) = session(&c, &headers) else {
        return Redirect::to("/console/sign-in").into_response();
    };
    let records = match usage_report(&c, &s, &period).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let report = outcrop_store::report(&records, outcrop_store::GroupBy::Model);
    let csv = report.to_csv(outcrop_store::GroupBy::Model);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"outcrop-usage.csv\"",
            ),
        ],
        csv,
    )
        .into_response()
}
