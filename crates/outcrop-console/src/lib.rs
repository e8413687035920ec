//! The web console at `/console`: server-rendered HTML (minijinja templates embedded in the
//! binary), a little plain JavaScript for the playground only, no network at run time.
//! Sign-in takes an access key pair (checked against the same store as SigV4); the session
//! lives in an HttpOnly, SameSite=Strict cookie and every form carries the session's CSRF
//! token.
//!
//! The console is a client of the service layer, never a second implementation: pages read
//! through `ApiState` and act through the API's own functions (`outcrop_api::call`, `agree`,
//! `identities`, `put_limits`), authorized by the principal's policies, which also decide what
//! the pages show.

#![forbid(unsafe_code)]
// Handlers stop early with the page to show: a `Response` is the natural error type here.
#![allow(clippy::result_large_err)]

mod access;
mod catalog;
mod page;
mod playground;
mod session;
mod settings;
mod sign_in;
mod usage;
mod users;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use outcrop_api::ApiState;
use std::sync::Arc;

/// What console handlers share.
#[derive(Clone)]
pub struct Console {
    api: Arc<ApiState>,
    sessions: session::Sessions,
    templates: Arc<minijinja::Environment<'static>>,
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("sign_in.html", include_str!("../templates/sign_in.html")),
    ("models.html", include_str!("../templates/models.html")),
    ("model.html", include_str!("../templates/model.html")),
    ("access.html", include_str!("../templates/access.html")),
    ("use_case.html", include_str!("../templates/use_case.html")),
    ("usage.html", include_str!("../templates/usage.html")),
    (
        "playground.html",
        include_str!("../templates/playground.html"),
    ),
    ("users.html", include_str!("../templates/users.html")),
    (
        "key_created.html",
        include_str!("../templates/key_created.html"),
    ),
    ("settings.html", include_str!("../templates/settings.html")),
    ("refused.html", include_str!("../templates/refused.html")),
];

fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name}: {e:#}"));
    }
    env
}

/// The playground's script, embedded like the templates.
async fn playground_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../assets/playground.js"),
    )
}

/// The `/console` routes.
pub fn router(api: Arc<ApiState>) -> Router {
    let console = Console {
        sessions: session::Sessions::new(api.service.store.clone()),
        api,
        templates: Arc::new(templates()),
    };
    Router::new()
        .route("/console", get(sign_in::home))
        .route("/console/", get(sign_in::home))
        .route(
            "/console/sign-in",
            get(sign_in::sign_in_form).post(sign_in::sign_in),
        )
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/region", post(sign_in::set_region))
        .route("/console/models", get(catalog::models))
        .route("/console/models/{model_id}", get(catalog::model))
        .route(
            "/console/access",
            get(access::access).post(access::save_access),
        )
        .route("/console/playground", get(playground::page))
        .route(
            "/console/playground/{operation}/{model_id}",
            post(playground::run),
        )
        .route("/console/usage", get(usage::usage))
        .route("/console/usage.csv", get(usage::usage_csv))
        .route("/console/users", get(users::users).post(users::create_user))
        .route("/console/users/{name}/delete", post(users::delete_user))
        .route("/console/users/{name}/keys", post(users::create_key))
        .route("/console/users/{name}/policies", post(users::put_policy))
        .route("/console/keys/{id}/delete", post(users::delete_key))
        .route(
            "/console/users/{name}/api-keys",
            post(users::create_api_key),
        )
        .route("/console/api-keys/{id}/delete", post(users::delete_api_key))
        .route("/console/settings", get(settings::settings))
        .route("/console/settings/logging", post(settings::save_logging))
        .route("/console/settings/quotas", post(settings::save_quota))
        .route("/console/assets/playground.js", get(playground_js))
        .with_state(console)
}

#[cfg(test)]
mod tests {
    #[test]
    fn templates_render_with_empty_data() {
        let env = super::templates();
        for (name, _) in super::TEMPLATES {
            if *name == "layout.html" {
                continue;
            }
            let ctx = serde_json::json!({
                "principal": "arn", "csrf": "t", "total": {}, "rows": [], "providers": [],
                "models": [], "days": [], "day_bars": [], "model_bars": [], "users": [],
                "root_keys": [], "quotas": [], "logging": {}, "regions": ["us-east-1"],
                "nav": {}, "m": {}, "profiles": [], "limits": {}, "metrics": [],
            });
            env.get_template(name)
                .unwrap()
                .render(ctx)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }
}
