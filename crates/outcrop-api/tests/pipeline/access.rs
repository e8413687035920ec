//! IAM policies and model access, and which refusal a caller sees first.

use crate::support::{claude_body, sdk_error, App, REPLY};
use aws_sdk_bedrockruntime::primitives::Blob;
use outcrop_engine::FakeEngine;
use outcrop_service::AccessMode;

async fn invoke(
    app: &App,
    key: &str,
    secret: &str,
    model: &str,
) -> Result<String, (String, String)> {
    app.client_as(key, secret)
        .await
        .invoke_model()
        .model_id(model)
        .body(Blob::new(if model.starts_with("meta.") {
            br#"{"prompt": "x", "max_gen_len": 5}"#.to_vec()
        } else {
            claude_body("\n\nHuman: x\n\nAssistant:", 5)
        }))
        .send()
        .await
        .map(|o| String::from_utf8_lossy(o.body().as_ref()).into_owned())
        .map_err(sdk_error)
}

const ALLOW_ALL: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}]}"#;

#[tokio::test]
async fn policies_decide_and_say_why() {
    let app = App::open().await;
    let (key, secret) = app.user("nobody", None).await;
    let (code, message) = invoke(&app, &key, &secret, "anthropic.claude-v2")
        .await
        .unwrap_err();
    assert_eq!(code, "AccessDeniedException");
    assert_eq!(
        message,
        "User: arn:aws:iam::000000000000:user/nobody is not authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2 because no identity-based policy allows the bedrock:InvokeModel action"
    );
    let deny_claude = r#"{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "bedrock:InvokeModel", "Resource": "arn:aws:bedrock:*::foundation-model/anthropic.*"}]}"#;
    let (key, secret) = app.user("limited", Some(deny_claude)).await;
    let (_, message) = invoke(&app, &key, &secret, "anthropic.claude-v2")
        .await
        .unwrap_err();
    assert!(message.ends_with("with an explicit deny in an identity-based policy"));
    invoke(&app, &key, &secret, "meta.llama3-8b-instruct-v1:0")
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unknown_model_is_invalid_whoever_asks() {
    let app = App::start(FakeEngine::replying("fake", REPLY), AccessMode::Explicit).await;
    let (key, secret) = app.user("nobody", None).await;
    for (key, secret) in [("test", "test"), (key.as_str(), secret.as_str())] {
        let (code, message) = invoke(&app, key, secret, "anthropic.claude-v9")
            .await
            .unwrap_err();
        assert_eq!(code, "ValidationException");
        assert_eq!(message, "The provided model identifier is invalid.");
    }
}

#[tokio::test]
async fn models_need_access_until_agreed() {
    let app = App::start(FakeEngine::replying("fake", REPLY), AccessMode::Explicit).await;
    let (code, message) = invoke(&app, "test", "test", "meta.llama3-8b-instruct-v1:0")
        .await
        .unwrap_err();
    assert_eq!(code, "AccessDeniedException");
    assert_eq!(
        message,
        "You don't have access to the model with the specified model ID."
    );
    let entry = app
        .state
        .catalog_entry("meta.llama3-8b-instruct-v1:0")
        .unwrap();
    let granted = outcrop_service::access::agree(&app.state, &app.root(), entry)
        .await
        .unwrap();
    assert!(granted, "Meta models need no use-case form");
    invoke(&app, "test", "test", "meta.llama3-8b-instruct-v1:0")
        .await
        .unwrap();
    // The notification was written to the outbox.
    let outbox = app.state.outbox.clone().unwrap();
    assert_eq!(std::fs::read_dir(outbox).unwrap().count(), 1);
}

#[tokio::test]
async fn iam_is_decided_before_model_access() {
    let app = App::start(FakeEngine::replying("fake", REPLY), AccessMode::Explicit).await;
    let (key, secret) = app.user("nobody", None).await;
    let (_, message) = invoke(&app, &key, &secret, "anthropic.claude-v2")
        .await
        .unwrap_err();
    assert!(message.starts_with("User: "), "{message}");
    let (key, secret) = app.user("everything", Some(ALLOW_ALL)).await;
    let (_, message) = invoke(&app, &key, &secret, "anthropic.claude-v2")
        .await
        .unwrap_err();
    assert!(message.starts_with("You don't have access"), "{message}");
}

#[tokio::test]
async fn availability_reports_the_callers_authorization() {
    let app = App::open().await;
    let path = "/foundation-model-availability/anthropic.claude-v2";
    let (status, _, body) = app.signed("GET", path, b"", "test", "test").await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(body["authorizationStatus"], "AUTHORIZED");
    assert_eq!(body["entitlementAvailability"], "AVAILABLE");
    let only_catalog = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "bedrock:GetFoundationModelAvailability", "Resource": "*"}]}"#;
    let (key, secret) = app.user("reader", Some(only_catalog)).await;
    let (status, _, body) = app.signed("GET", path, b"", &key, &secret).await;
    assert_eq!(status.as_u16(), 200, "{body}");
    assert_eq!(body["authorizationStatus"], "NOT_AUTHORIZED");
}
