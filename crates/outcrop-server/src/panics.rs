//! A handler that panics answers its own request with Bedrock's 500 InternalServerException
//! and the server lives on; what panicked is logged, never sent.

use axum::response::Response;
use outcrop_api::error::{response, ApiError};
use std::any::Any;
use tower_http::catch_panic::CatchPanicLayer;

fn internal_error(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = what, "a request handler panicked");
    response(&ApiError::Internal)
}

/// The layer that turns a panicking request into a 500.
pub fn layer() -> CatchPanicLayer<fn(Box<dyn Any + Send + 'static>) -> Response> {
    CatchPanicLayer::custom(internal_error as fn(Box<dyn Any + Send + 'static>) -> Response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("secret detail")
    }

    #[tokio::test]
    async fn a_panic_is_a_500_and_the_router_serves_on() {
        let app = axum::Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "fine" }))
            .layer(layer());
        let get = |path: &str| {
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let r = app.clone().oneshot(get("/boom")).await.unwrap();
        assert_eq!(r.status(), 500);
        assert!(r.headers()["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .starts_with("InternalServerException"));
        let body = axum::body::to_bytes(r.into_body(), 10_000).await.unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("secret"));
        let r = app.oneshot(get("/ok")).await.unwrap();
        assert_eq!(r.status(), 200);
    }
}
