//! The web console at `/console`: server-rendered HTML (minijinja templates embedded in the
//! binary), no JavaScript needed, no network at run time. Sign-in takes an access key pair
//! (checked against the same store as SigV4); the session lives in an HttpOnly,
//! SameSite=Strict cookie and every form carries the session's CSRF token.
//!
//! This first slice: sign-in/out and the model catalog with each model's access status. The
//! console reads through the same state as the API (`ApiState`), never a second copy.

#![forbid(unsafe_code)]

mod pages;
mod session;

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

fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, source) in [
        ("layout.html", include_str!("../templates/layout.html")),
        ("sign_in.html", include_str!("../templates/sign_in.html")),
        ("models.html", include_str!("../templates/models.html")),
        ("access.html", include_str!("../templates/access.html")),
        ("use_case.html", include_str!("../templates/use_case.html")),
        ("usage.html", include_str!("../templates/usage.html")),
    ] {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name}: {e:#}"));
    }
    env
}

/// The `/console` routes.
pub fn router(api: Arc<ApiState>) -> Router {
    let console = Console {
        api,
        sessions: session::Sessions::default(),
        templates: Arc::new(templates()),
    };
    Router::new()
        .route("/console", get(pages::home))
        .route("/console/", get(pages::home))
        .route(
            "/console/sign-in",
            get(pages::sign_in_form).post(pages::sign_in),
        )
        .route("/console/sign-out", post(pages::sign_out))
        .route("/console/models", get(pages::models))
        .route("/console/usage", get(pages::usage))
        .route("/console/usage.csv", get(pages::usage_csv))
        .route(
            "/console/access",
            get(pages::access).post(pages::save_access),
        )
        .with_state(console)
}

#[cfg(test)]
mod tests {
    #[test]
    fn templates_render_with_empty_data() {
        let env = super::templates();
        for name in [
            "sign_in.html",
            "models.html",
            "access.html",
            "use_case.html",
            "usage.html",
        ] {
            let ctx = serde_json::json!({
                "principal": "arn", "csrf": "t", "total": {}, "rows": [], "providers": [],
                "models": [], "days": [], "bars": [],
            });
            env.get_template(name)
                .unwrap()
                .render(ctx)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn templates_parse() {
        let env = super::templates();
        assert!(env.get_template("models.html").is_ok());
    }
}
