//! Bedrock API keys: bearer tokens in `Authorization: Bearer`, verified here without any
//! network call.
//!
//! - Long-term keys are `ABSK` + base64(`ALIAS:SECRET`), an IAM service-specific credential of
//!   a user (`BedrockAPIKey-XXXX-at-ACCOUNT` is the alias). The store keeps a hash of the
//!   secret; the key is shown once.
//! - Short-term keys are what `aws-bedrock-token-generator` makes from an access key:
//!   `bedrock-api-key-` + base64(a presigned `POST https://bedrock.amazonaws.com/?Action=
//!   CallWithBearerToken` URL without its scheme, then `&Version=1`). The presigned signature
//!   is checked against the access key's secret, and its expiry (at most 12 hours) enforced.
//!
//! Either way the request acts as the key's user, under that user's policies.

use crate::iam::authorize_action;
use crate::{ApiError, Origin, Principal, Service};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use http::request::Parts;
use outcrop_sigv4::{verify_presigned, Presigned};
use outcrop_store::{user_arn, ApiKeyRecord};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const LONG_TERM: &str = "ABSK";
const SHORT_TERM: &str = "bedrock-api-key-";
/// The host and action every short-term token is presigned for.
const TOKEN_HOST: &str = "bedrock.amazonaws.com";
const TOKEN_ACTION: &str = "Action=CallWithBearerToken";
const TOKEN_VERSION: &str = "&Version=1";
/// The longest a short-term token may live, as the token generator allows.
const TOKEN_MAX_LIFETIME: TimeDelta = TimeDelta::hours(12);
/// The service name the token generator signs with.
const TOKEN_SERVICE: &str = "bedrock";

pub const API_KEY_FORMAT: &str = "Invalid API Key format: Must start with pre-defined prefix";
pub const API_KEY_INVALID: &str = "Authentication failed: Please make sure your API Key is valid.";

/// A freshly made long-term key: the only time `key` is shown.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub record: ApiKeyRecord,
    /// The bearer token, `ABSK…`.
    pub key: String,
}

/// Why a bearer token was refused (logged; the client sees one text, as on Bedrock).
fn invalid(reason: &str) -> ApiError {
    tracing::info!(reason, "API key refused");
    ApiError::InvalidApiKey(API_KEY_INVALID.into())
}

/// The principal of a request that carries `Authorization: Bearer TOKEN`.
pub async fn authenticate_bearer(
    state: &Service,
    parts: &Parts,
    token: &str,
) -> Result<Principal, ApiError> {
    let token = token.trim();
    if let Some(encoded) = token.strip_prefix(LONG_TERM) {
        long_term(state, parts, encoded).await
    } else if let Some(encoded) = token.strip_prefix(SHORT_TERM) {
        short_term(state, parts, encoded).await
    } else {
        Err(ApiError::InvalidApiKey(API_KEY_FORMAT.into()))
    }
}

fn decode(encoded: &str) -> Option<String> {
    String::from_utf8(STANDARD.decode(encoded).ok()?).ok()
}

async fn long_term(state: &Service, parts: &Parts, encoded: &str) -> Result<Principal, ApiError> {
    let decoded = decode(encoded).ok_or_else(|| invalid("not base64"))?;
    let (alias, secret) = decoded.split_once(':').ok_or_else(|| invalid("no alias"))?;
    let Some(key) = state.store.api_key(alias).await? else {
        return Err(invalid("unknown alias"));
    };
    let hash = hex::encode(Sha256::digest(secret.as_bytes()));
    if !bool::from(hash.as_bytes().ct_eq(key.secret_sha256.as_bytes())) {
        return Err(invalid("wrong secret"));
    }
    if !key.active {
        return Err(invalid("inactive key"));
    }
    let expired = key
        .expires_at
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t <= Utc::now());
    if expired {
        return Err(invalid("expired key"));
    }
    Ok(Principal {
        arn: key.principal_arn(),
        account_id: key.account_id,
        access_key_id: key.credential_id,
        region: region_of(parts),
    })
}

async fn short_term(state: &Service, parts: &Parts, encoded: &str) -> Result<Principal, ApiError> {
    let url = decode(encoded).ok_or_else(|| invalid("not base64"))?;
    let url = url
        .strip_suffix(TOKEN_VERSION)
        .ok_or_else(|| invalid("no version"))?;
    let (host, query) = url.split_once("/?").ok_or_else(|| invalid("not a URL"))?;
    if host != TOKEN_HOST || !query.starts_with(TOKEN_ACTION) {
        return Err(invalid("presigned for another host or action"));
    }
    let presigned = Presigned::parse(query).map_err(|_| invalid("not a presigned URL"))?;
    let access_key_id = &presigned.authorization.credential.access_key_id;
    let Some(credential) = state.store.credential(access_key_id).await? else {
        return Err(invalid("unknown access key"));
    };
    if !state.auth.admits(
        &credential,
        parts.extensions.get::<Origin>(),
        &parts.headers,
    ) {
        return Err(invalid("development key from another machine"));
    }
    if presigned.security_token != credential.session_token {
        return Err(invalid("session token"));
    }
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static(TOKEN_HOST),
    );
    let verified = verify_presigned(
        &presigned,
        &credential.secret,
        "POST",
        "/",
        query,
        &headers,
        &[TOKEN_SERVICE],
        TOKEN_MAX_LIFETIME,
        Utc::now(),
    )
    .map_err(|e| invalid(&e.to_string()))?;
    Ok(Principal {
        account_id: credential.account_id,
        arn: credential.principal_arn,
        access_key_id: verified.access_key_id,
        region: verified.region,
    })
}

/// The region a bearer request is for: from an AWS-style host name
/// (`bedrock-runtime.REGION.amazonaws.com`), else `us-east-1`. A long-term key names none.
fn region_of(parts: &Parts) -> String {
    let host = parts
        .uri
        .authority()
        .map(|a| a.host().to_owned())
        .or_else(|| {
            let host = parts.headers.get(http::header::HOST)?.to_str().ok()?;
            Some(host.split(':').next().unwrap_or(host).to_owned())
        })
        .unwrap_or_default();
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [service, region, "amazonaws", "com"] if service.starts_with("bedrock") => {
            (*region).to_owned()
        }
        _ => "us-east-1".to_owned(),
    }
}

/// Makes a long-term key for `user` (`iam:CreateServiceSpecificCredential`), valid for
/// `age_days` (IAM's `CredentialAgeDays`, 1 to 36600) or until deleted.
pub async fn create(
    state: &Service,
    p: &Principal,
    user: &str,
    age_days: Option<i64>,
) -> Result<NewApiKey, ApiError> {
    authorize_action(
        state,
        p,
        "iam:CreateServiceSpecificCredential",
        &[user_arn(&p.account_id, user)],
    )
    .await?;
    if age_days.is_some_and(|d| !(1..=36600).contains(&d)) {
        return Err(ApiError::Validation(
            "CredentialAgeDays must be between 1 and 36600.".into(),
        ));
    }
    let now = Utc::now();
    let id = random_text(17, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    let secret = random_text(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    );
    let alias = format!(
        "BedrockAPIKey-{}-at-{}",
        random_text(4, b"abcdefghijklmnopqrstuvwxyz0123456789"),
        p.account_id
    );
    let record = ApiKeyRecord {
        credential_id: format!("ACCA{id}"),
        alias: alias.clone(),
        secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
        account_id: p.account_id.clone(),
        user_name: user.to_owned(),
        active: true,
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        expires_at: age_days
            .map(TimeDelta::days)
            .map(|d| (now + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    };
    if !state.store.insert_api_key(&record).await? {
        return Err(ApiError::ResourceNotFound(format!(
            "The user with name {user} cannot be found."
        )));
    }
    tracing::info!(by = %p.arn, user, credential = %record.credential_id, "API key created");
    Ok(NewApiKey {
        key: key_for(&alias, &secret),
        record,
    })
}

/// The bearer token of a long-term key.
fn key_for(alias: &str, secret: &str) -> String {
    format!(
        "{LONG_TERM}{}",
        STANDARD.encode(format!("{alias}:{secret}"))
    )
}

/// `n` characters of `alphabet` (64 letters at most), from the operating system's generator.
fn random_text(n: usize, alphabet: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(n + 16);
    while bytes.len() < n {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes[..n]
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect()
}

/// The account's long-term keys, or one user's (`iam:ListServiceSpecificCredentials`).
pub async fn list(
    state: &Service,
    p: &Principal,
    user: Option<&str>,
) -> Result<Vec<ApiKeyRecord>, ApiError> {
    let resource = user.map_or_else(|| "*".to_owned(), |u| user_arn(&p.account_id, u));
    authorize_action(state, p, "iam:ListServiceSpecificCredentials", &[resource]).await?;
    Ok(state.store.list_api_keys(&p.account_id, user).await?)
}

async fn find(
    state: &Service,
    p: &Principal,
    credential_id: &str,
) -> Result<ApiKeyRecord, ApiError> {
    state
        .store
        .list_api_keys(&p.account_id, None)
        .await?
        .into_iter()
        .find(|k| k.credential_id == credential_id)
        .ok_or_else(|| {
            ApiError::ResourceNotFound(format!(
                "The Service-Specific Credential with id {credential_id} cannot be found."
            ))
        })
}

/// Makes a key Active or Inactive (`iam:UpdateServiceSpecificCredential`).
pub async fn set_active(
    state: &Service,
    p: &Principal,
    credential_id: &str,
    active: bool,
) -> Result<(), ApiError> {
    let key = find(state, p, credential_id).await?;
    authorize_action(
        state,
        p,
        "iam:UpdateServiceSpecificCredential",
        &[key.principal_arn()],
    )
    .await?;
    state
        .store
        .set_api_key_active(&p.account_id, credential_id, active)
        .await?;
    tracing::info!(by = %p.arn, credential = %credential_id, active, "API key updated");
    Ok(())
}

/// Revokes a key for good (`iam:DeleteServiceSpecificCredential`).
pub async fn delete(state: &Service, p: &Principal, credential_id: &str) -> Result<(), ApiError> {
    let key = find(state, p, credential_id).await?;
    authorize_action(
        state,
        p,
        "iam:DeleteServiceSpecificCredential",
        &[key.principal_arn()],
    )
    .await?;
    state
        .store
        .delete_api_key(&p.account_id, credential_id)
        .await?;
    tracing::info!(by = %p.arn, credential = %credential_id, "API key deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(host: &str) -> Parts {
        http::Request::get("/")
            .header("host", host)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn the_region_comes_from_an_aws_host_name() {
        assert_eq!(
            region_of(&parts("bedrock-runtime.eu-west-3.amazonaws.com")),
            "eu-west-3"
        );
        assert_eq!(
            region_of(&parts("bedrock-runtime-fips.us-west-2.amazonaws.com:443")),
            "us-west-2"
        );
        assert_eq!(region_of(&parts("127.0.0.1:4680")), "us-east-1");
        assert_eq!(region_of(&parts("example.com")), "us-east-1");
    }

    #[test]
    fn long_term_keys_carry_their_alias() {
        let key = key_for("BedrockAPIKey-ab12-at-000000000000", "s3cr/t+");
        let decoded = decode(key.strip_prefix(LONG_TERM).unwrap()).unwrap();
        assert_eq!(decoded, "BedrockAPIKey-ab12-at-000000000000:s3cr/t+");
        assert!(random_text(40, b"ab").chars().all(|c| c == 'a' || c == 'b'));
        assert_eq!(random_text(17, b"XYZ").len(), 17);
    }
}
