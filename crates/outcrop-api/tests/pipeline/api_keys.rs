//! Bedrock API keys as `Authorization: Bearer`: long-term keys of a user, and short-term
//! tokens presigned from an access key (here by the AWS SDK for Rust's own signer, as
//! `aws-bedrock-token-generator` does in Python).

use crate::support::{claude_body, App};
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use outcrop_service::api_keys;
use std::time::{Duration, SystemTime};

const ALLOW_INVOKE: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": "*"}]}"#;
const DENY_ALL: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "bedrock:*", "Resource": "*"}]}"#;
const FORMAT: &str = "Invalid API Key format: Must start with pre-defined prefix";
const INVALID: &str = "Authentication failed: Please make sure your API Key is valid.";

async fn invoke(app: &App, token: &str) -> (StatusCode, HeaderMap, serde_json::Value) {
    let request = Request::post("/model/anthropic.claude-v2/invoke")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(claude_body("\n\nHuman: hi\n\nAssistant:", 5)))
        .unwrap();
    app.send(request).await
}

/// The error code and message of a refused call.
fn refused(answer: (StatusCode, HeaderMap, serde_json::Value)) -> (String, String) {
    let (status, headers, body) = answer;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let code = headers["x-amzn-errortype"].to_str().unwrap();
    let code = code.split(':').next().unwrap().to_owned();
    (code, body["message"].as_str().unwrap().to_owned())
}

/// A short-term key as the token generator makes it: a presigned `CallWithBearerToken` URL.
fn short_term_token(
    key: &str,
    secret: &str,
    at: SystemTime,
    lifetime: Duration,
    host: &str,
) -> String {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    };
    use aws_sigv4::sign::v4;
    let identity = Credentials::new(key, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(lifetime);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-west-2")
        .name("bedrock")
        .time(at)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let url = format!("https://{host}/?Action=CallWithBearerToken");
    let signable = SignableRequest::new(
        "POST",
        &url,
        [("host", host)].into_iter(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut presigned = url;
    for (name, value) in instructions.params() {
        let value =
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC);
        presigned.push_str(&format!("&{name}={value}"));
    }
    let token = presigned.trim_start_matches("https://").to_owned() + "&Version=1";
    format!("bedrock-api-key-{}", STANDARD.encode(token))
}

#[tokio::test]
async fn long_term_keys_act_as_their_user_until_revoked() {
    let app = App::open().await;
    let service = &app.state.service;
    let root = app.root();
    app.user("alice", Some(ALLOW_INVOKE)).await;
    app.user("mallory", Some(DENY_ALL)).await;
    let alice = api_keys::create(service, &root, "alice", None)
        .await
        .unwrap();
    assert!(alice.key.starts_with("ABSK"));
    assert!(alice.record.alias.starts_with("BedrockAPIKey-"));
    assert!(alice.record.credential_id.starts_with("ACCA"));

    let (status, _, body) = invoke(&app, &alice.key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let records = app.ledger(1).await;
    assert_eq!(
        records[0].principal_arn,
        "arn:aws:iam::000000000000:user/alice"
    );

    // The user's policies apply.
    let mallory = api_keys::create(service, &root, "mallory", None)
        .await
        .unwrap();
    let (code, _) = refused(invoke(&app, &mallory.key).await);
    assert_eq!(code, "AccessDeniedException");

    // Inactive, then active again, then deleted.
    let id = &alice.record.credential_id;
    api_keys::set_active(service, &root, id, false)
        .await
        .unwrap();
    assert_eq!(refused(invoke(&app, &alice.key).await).1, INVALID);
    api_keys::set_active(service, &root, id, true)
        .await
        .unwrap();
    assert_eq!(invoke(&app, &alice.key).await.0, StatusCode::OK);
    api_keys::delete(service, &root, id).await.unwrap();
    assert_eq!(refused(invoke(&app, &alice.key).await).1, INVALID);
    let err = api_keys::delete(service, &root, id).await.unwrap_err();
    assert!(err.to_string().contains("cannot be found"), "{err}");
}

#[tokio::test]
async fn malformed_forged_and_expired_long_term_keys_are_refused() {
    let app = App::open().await;
    let service = &app.state.service;
    app.user("alice", Some(ALLOW_INVOKE)).await;
    let alice = api_keys::create(service, &app.root(), "alice", None)
        .await
        .unwrap();

    assert_eq!(
        refused(invoke(&app, "sk-not-a-bedrock-key").await),
        ("AccessDeniedException".into(), FORMAT.into())
    );
    for forged in [
        "ABSK!!!not-base64".to_owned(),
        format!("ABSK{}", STANDARD.encode("no-colon")),
        format!(
            "ABSK{}",
            STANDARD.encode(format!("{}:wrong-secret", alice.record.alias))
        ),
        format!(
            "ABSK{}",
            STANDARD.encode("BedrockAPIKey-zzzz-at-000000000000:secret")
        ),
    ] {
        assert_eq!(
            refused(invoke(&app, &forged).await),
            ("AccessDeniedException".into(), INVALID.into()),
            "{forged}"
        );
    }

    // A key past its expiry date.
    let mut expired = alice.record.clone();
    expired.credential_id = "ACCAEXPIRED".into();
    expired.alias = "BedrockAPIKey-old0-at-000000000000".into();
    expired.expires_at = Some("2026-01-01T00:00:00Z".into());
    let secret = STANDARD
        .decode(alice.key.trim_start_matches("ABSK"))
        .unwrap();
    let secret = String::from_utf8(secret).unwrap();
    let secret = secret.split_once(':').unwrap().1.to_owned();
    assert!(service.store.insert_api_key(&expired).await.unwrap());
    let token = format!(
        "ABSK{}",
        STANDARD.encode(format!("{}:{secret}", expired.alias))
    );
    assert_eq!(refused(invoke(&app, &token).await).1, INVALID);

    // A key's lifetime is bounded as IAM bounds CredentialAgeDays.
    let err = api_keys::create(service, &app.root(), "alice", Some(0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CredentialAgeDays"), "{err}");
}

#[tokio::test]
async fn short_term_tokens_from_an_access_key_work_until_they_expire() {
    let app = App::open().await;
    let (key, secret) = app.user("alice", Some(ALLOW_INVOKE)).await;
    let now = SystemTime::now();
    let twelve_hours = Duration::from_secs(12 * 3600);

    let token = short_term_token(&key, &secret, now, twelve_hours, "bedrock.amazonaws.com");
    let (status, _, body) = invoke(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.ledger(1).await[0].principal_arn,
        "arn:aws:iam::000000000000:user/alice"
    );

    let refusals = [
        // Expired an hour ago.
        short_term_token(
            &key,
            &secret,
            now - Duration::from_secs(7200),
            Duration::from_secs(3600),
            "bedrock.amazonaws.com",
        ),
        // Longer than twelve hours.
        short_term_token(
            &key,
            &secret,
            now,
            twelve_hours + Duration::from_secs(1),
            "bedrock.amazonaws.com",
        ),
        // Signed with another secret, or by a key this server does not know.
        short_term_token(
            &key,
            "not-the-secret",
            now,
            twelve_hours,
            "bedrock.amazonaws.com",
        ),
        short_term_token(
            "AKIAUNKNOWN",
            &secret,
            now,
            twelve_hours,
            "bedrock.amazonaws.com",
        ),
        // Presigned for another host.
        short_term_token(&key, &secret, now, twelve_hours, "sts.amazonaws.com"),
        // Cut short.
        token[..token.len() - 12].to_owned(),
    ];
    for token in refusals {
        assert_eq!(
            refused(invoke(&app, &token).await),
            ("AccessDeniedException".into(), INVALID.into())
        );
    }
}
