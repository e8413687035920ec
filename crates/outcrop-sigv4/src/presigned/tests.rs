//! Against tokens made by the official `aws-bedrock-token-generator` (Python, 1.1.0) from
//! AWS's documentation example key.
use super::*;
use chrono::TimeZone;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const QUERY: &str = "Action=CallWithBearerToken&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261204%2Fus-west-2%2Fbedrock%2Faws4_request&X-Amz-Date=20261204T202228Z&X-Amz-Expires=43200&X-Amz-SignedHeaders=host&X-Amz-Signature=abcf9e612a896f636f36e6d0f1b34afe5c42a749c3902f3f27dac574b33feec9";
const WITH_SESSION_TOKEN: &str = "Action=CallWithBearerToken&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLE%2F20261204%2Feu-central-1%2Fbedrock%2Faws4_request&X-Amz-Date=20261204T202228Z&X-Amz-Expires=43200&X-Amz-SignedHeaders=host&X-Amz-Security-Token=session%2Ftoken%2Bx%3D%3D&X-Amz-Signature=be9f5d00ae09123a49fb605649fa495761a9617ead8edbd526038207a1917f9e";

fn host() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("host", "bedrock.amazonaws.com".parse().unwrap());
    h
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, h, m, 0).unwrap()
}

fn check(query: &str, secret: &str, now: DateTime<Utc>) -> Result<Verified, SigV4Error> {
    let presigned = Presigned::parse(query)?;
    verify_presigned(
        &presigned,
        &SecretKey::new(secret),
        "POST",
        "/",
        query,
        &host(),
        &["bedrock"],
        TimeDelta::hours(12),
        now,
    )
}

#[test]
fn token_generator_signatures_verify() {
    let ok = check(QUERY, SECRET, at(20, 30)).unwrap();
    assert_eq!(
        (ok.access_key_id.as_str(), ok.region.as_str()),
        ("AKIDEXAMPLE", "us-west-2")
    );
    let presigned = Presigned::parse(WITH_SESSION_TOKEN).unwrap();
    assert_eq!(
        presigned.security_token.as_deref(),
        Some("session/token+x==")
    );
    assert_eq!(presigned.expires, TimeDelta::hours(12));
    let ok = check(WITH_SESSION_TOKEN, SECRET, at(21, 0)).unwrap();
    assert_eq!(ok.region, "eu-central-1");
}

#[test]
fn another_secret_or_a_changed_query_fails() {
    let other = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ";
    assert!(matches!(
        check(QUERY, other, at(20, 30)),
        Err(SigV4Error::Mismatch(_))
    ));
    let changed = QUERY.replace("us-west-2", "us-east-1");
    assert!(matches!(
        check(&changed, SECRET, at(20, 30)),
        Err(SigV4Error::Mismatch(_))
    ));
}

#[test]
fn the_validity_window_is_enforced() {
    // Twelve hours after 20:22:28, and not before it (beyond the clock skew).
    assert!(check(
        QUERY,
        SECRET,
        Utc.with_ymd_and_hms(2026, 12, 5, 8, 22, 0).unwrap()
    )
    .is_ok());
    let late = Utc.with_ymd_and_hms(2026, 12, 5, 8, 23, 0).unwrap();
    assert!(matches!(
        check(QUERY, SECRET, late),
        Err(SigV4Error::Expired(_))
    ));
    assert!(matches!(
        check(QUERY, SECRET, at(20, 0)),
        Err(SigV4Error::Expired(_))
    ));
    let long = QUERY.replace("X-Amz-Expires=43200", "X-Amz-Expires=43201");
    assert!(matches!(
        check(&long, SECRET, at(20, 30)),
        Err(SigV4Error::Expired(_))
    ));
}

#[test]
fn missing_parameters_are_named() {
    let without = QUERY.replace("&X-Amz-Date=20261204T202228Z", "");
    let Err(SigV4Error::Incomplete(message)) = Presigned::parse(&without) else {
        panic!("parsed without a date")
    };
    assert!(message.contains("X-Amz-Date"), "{message}");
    assert!(Presigned::parse("X-Amz-Algorithm=HMAC").is_err());
}
