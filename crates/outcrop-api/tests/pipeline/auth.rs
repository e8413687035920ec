//! Authentication: what an unsigned, unknown or wrongly signed request gets.

use crate::support::{claude_body, sdk_error, App};
use aws_sdk_bedrockruntime::primitives::Blob;
use axum::body::Body;
use axum::http::Request;

#[tokio::test]
async fn unsigned_requests_are_refused() {
    let app = App::open().await;
    let request = Request::post("/model/anthropic.claude-v2/invoke")
        .body(Body::from(claude_body("\n\nHuman: x\n\nAssistant:", 5)))
        .unwrap();
    let (status, headers, body) = app.send(request).await;
    assert_eq!(status.as_u16(), 403);
    assert!(headers["x-amzn-errortype"]
        .to_str()
        .unwrap()
        .starts_with("MissingAuthenticationTokenException:"));
    assert_eq!(body["message"], "Missing Authentication Token");
    assert!(headers.contains_key("x-amzn-requestid"));
}

#[tokio::test]
async fn unknown_keys_and_wrong_secrets_are_refused() {
    let app = App::open().await;
    let call = |key: &'static str, secret: &'static str| {
        let app = &app;
        async move {
            app.client_as(key, secret)
                .await
                .invoke_model()
                .model_id("anthropic.claude-v2")
                .body(Blob::new(claude_body("\n\nHuman: x\n\nAssistant:", 5)))
                .send()
                .await
                .map_err(sdk_error)
                .unwrap_err()
        }
    };
    let (code, message) = call("AKIDUNKNOWN", "x").await;
    assert_eq!(code, "UnrecognizedClientException");
    assert_eq!(
        message,
        "The security token included in the request is invalid."
    );
    let (code, _) = call("test", "not-the-secret").await;
    assert_eq!(code, "InvalidSignatureException");
}

#[tokio::test]
async fn unknown_routes_are_unknown_operations() {
    let app = App::open().await;
    let (status, headers, _) = app
        .signed("GET", "/no/such/thing", b"", "test", "test")
        .await;
    assert_eq!(status.as_u16(), 404);
    assert!(headers["x-amzn-errortype"]
        .to_str()
        .unwrap()
        .starts_with("UnknownOperationException:"));
}
