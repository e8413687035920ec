//! Verification against AWS's published signing examples and against the AWS SDK's own signer.
use super::*;
use crate::canonical::canonical_request;
use chrono::TimeZone;

const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn example_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

/// AWS General Reference, "Signature Version 4 signing process": IAM ListUsers example.
#[test]
fn aws_documented_iam_example() {
    let h = headers(&[
        ("host", "iam.amazonaws.com"),
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("x-amz-date", "20150830T123600Z"),
    ]);
    let signed = vec![
        "content-type".to_owned(),
        "host".to_owned(),
        "x-amz-date".to_owned(),
    ];
    let empty = hash_payload(b"");
    assert_eq!(
        empty,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let canonical = canonical_request(
        "GET",
        "/",
        "Action=ListUsers&Version=2010-05-08",
        &h,
        None,
        &signed,
        &empty,
    );
    assert_eq!(
        hex::encode(Sha256::digest(canonical.as_bytes())),
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    );
    let key = signing_key(
        &SecretKey::new(EXAMPLE_SECRET),
        "20150830",
        "us-east-1",
        "iam",
    );
    assert_eq!(
        hex::encode(&key),
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    );

    let auth = Authorization::parse("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7").unwrap();
    let parts = RequestParts {
        method: "GET",
        raw_path: "/",
        raw_query: "Action=ListUsers&Version=2010-05-08",
        headers: &h,
        authority: None,
        payload_hash: &empty,
    };
    let ok = verify(
        &auth,
        &SecretKey::new(EXAMPLE_SECRET),
        &parts,
        &["iam"],
        example_time(),
    )
    .unwrap();
    assert_eq!(ok.access_key_id, "AKIDEXAMPLE");
    assert_eq!(ok.region, "us-east-1");
}

/// Verifies AWS's SigV4 test-suite request `get-vanilla` with a given secret, accepted
/// services and clock.
fn get_vanilla(
    secret: &str,
    services: &[&str],
    now: DateTime<Utc>,
) -> Result<Verified, SigV4Error> {
    let h = headers(&[
        ("host", "example.amazonaws.com"),
        ("x-amz-date", "20150830T123600Z"),
    ]);
    let auth = Authorization::parse("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31").unwrap();
    let empty = hash_payload(b"");
    let parts = RequestParts {
        method: "GET",
        raw_path: "/",
        raw_query: "",
        headers: &h,
        authority: None,
        payload_hash: &empty,
    };
    verify(&auth, &SecretKey::new(secret), &parts, services, now)
}

/// AWS SigV4 test suite, `get-vanilla`.
#[test]
fn aws_test_suite_get_vanilla() {
    get_vanilla(EXAMPLE_SECRET, &["service"], example_time()).unwrap();
    // One changed byte of the secret must fail.
    let err = get_vanilla(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ",
        &["service"],
        example_time(),
    )
    .unwrap_err();
    assert_eq!(err, SigV4Error::Mismatch(SIGNATURE_MISMATCH.to_owned()));
}

#[test]
fn clock_skew_is_fifteen_minutes() {
    let at = |mins: i64| example_time() + TimeDelta::minutes(mins);
    assert!(get_vanilla(EXAMPLE_SECRET, &["service"], at(14)).is_ok());
    assert!(get_vanilla(EXAMPLE_SECRET, &["service"], at(-14)).is_ok());
    let late = get_vanilla(EXAMPLE_SECRET, &["service"], at(16)).unwrap_err();
    assert!(
        matches!(&late, SigV4Error::Expired(m) if m.starts_with("Signature expired: 20150830T123600Z is now earlier than")),
        "{late:?}"
    );
    let early = get_vanilla(EXAMPLE_SECRET, &["service"], at(-16)).unwrap_err();
    assert!(
        matches!(&early, SigV4Error::Expired(m) if m.starts_with("Signature not yet current")),
        "{early:?}"
    );
}

#[test]
fn wrong_service_scope_is_refused() {
    let err = get_vanilla(EXAMPLE_SECRET, &["bedrock"], example_time()).unwrap_err();
    assert!(matches!(err, SigV4Error::Mismatch(m) if m.contains("'bedrock'")));
}

/// The AWS SDK's own signer (aws-sigv4, as used by aws-sdk-bedrockruntime) signs a Bedrock
/// request with a `:` in the model id; we must accept it, and refuse it once the body changes.
#[test]
fn accepts_what_the_aws_sdk_signer_produces() {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;

    let now = Utc::now();
    let identity = Credentials::new(
        "AKIDTEST",
        "s3cr3t/key",
        Some("session-token".into()),
        None,
        "test",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-3")
        .name("bedrock")
        .time(now.into())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let body = br#"{"prompt":"\n\nHuman: hi\n\nAssistant:","max_tokens_to_sample":5}"#;
    let path = "/model/anthropic.claude-v2%3A1/invoke";
    let base_headers = [
        ("content-type", "application/json"),
        ("host", "127.0.0.1:8080"),
    ];
    let signable = SignableRequest::new(
        "POST",
        format!("http://127.0.0.1:8080{path}"),
        base_headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut h = headers(&base_headers);
    for (name, value) in instructions.headers() {
        h.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    assert!(h.contains_key("x-amz-security-token"));
    let auth = Authorization::parse(h["authorization"].to_str().unwrap()).unwrap();
    assert!(auth
        .signed_headers
        .contains(&"x-amz-security-token".to_owned()));
    let secret = SecretKey::new("s3cr3t/key");
    let hash = hash_payload(body);
    let parts = RequestParts {
        method: "POST",
        raw_path: path,
        raw_query: "",
        headers: &h,
        authority: None,
        payload_hash: &hash,
    };
    let ok = verify(&auth, &secret, &parts, &["bedrock", "bedrock-runtime"], now).unwrap();
    assert_eq!(ok.region, "eu-west-3");

    let tampered = hash_payload(br#"{"prompt":"x"}"#);
    let parts = RequestParts {
        payload_hash: &tampered,
        ..parts
    };
    assert!(matches!(
        verify(&auth, &secret, &parts, &["bedrock"], now),
        Err(SigV4Error::Mismatch(_))
    ));
}
