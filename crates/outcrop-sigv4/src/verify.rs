use crate::error::SIGNATURE_MISMATCH;
use crate::{canonical::canonical_request, Authorization, SecretKey, SigV4Error};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How far the request time may be from the server's clock, either way.
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(15);

/// The parts of an HTTP request that a signature covers.
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path exactly as received, still percent-encoded.
    pub raw_path: &'a str,
    /// The query exactly as received (without `?`), or "".
    pub raw_query: &'a str,
    pub headers: &'a http::HeaderMap,
    /// The URI's authority: HTTP/2's `:authority`; `None` for HTTP/1.1, whose `host` header
    /// carries it.
    pub authority: Option<&'a str>,
    /// Hex SHA-256 of the body (see [`hash_payload`]).
    pub payload_hash: &'a str,
}

/// Proof that a request was signed with the secret of `access_key_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    pub region: String,
    pub service: String,
}

/// Hex SHA-256 of a request body.
pub fn hash_payload(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The derived signing key for a scope.
pub fn signing_key(secret: &SecretKey, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(
        format!("AWS4{}", secret.expose()).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The string to sign for a canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies `auth` against the request, the secret and the clock.
/// `services` lists the credential-scope services accepted (e.g. `bedrock`, `bedrock-runtime`).
pub fn verify(
    auth: &Authorization,
    secret: &SecretKey,
    request: &RequestParts<'_>,
    services: &[&str],
    now: DateTime<Utc>,
) -> Result<Verified, SigV4Error> {
    let amz_date = check_headers(auth, request.headers, services, now)?;
    let scope = &auth.credential;
    let canonical = canonical_request(
        request.method,
        request.raw_path,
        request.raw_query,
        request.headers,
        request.authority,
        &auth.signed_headers,
        request.payload_hash,
    );
    let to_sign = string_to_sign(amz_date, &scope.scope_string(), &canonical);
    let key = signing_key(secret, &scope.date, &scope.region, &scope.service);
    let expected = hex::encode(hmac(&key, to_sign.as_bytes()));
    if expected.as_bytes().ct_eq(auth.signature.as_bytes()).into() {
        Ok(Verified {
            access_key_id: scope.access_key_id.clone(),
            region: scope.region.clone(),
            service: scope.service.clone(),
        })
    } else {
        Err(SigV4Error::Mismatch(SIGNATURE_MISMATCH.to_owned()))
    }
}

/// What can be checked from the headers alone, before the body is read: the scope's service,
/// the signed headers, the date's form, the clock skew and the scope's date. Returns the
/// request's `X-Amz-Date`.
pub fn check_headers<'h>(
    auth: &Authorization,
    headers: &'h http::HeaderMap,
    services: &[&str],
    now: DateTime<Utc>,
) -> Result<&'h str, SigV4Error> {
    let scope = &auth.credential;
    if !services.contains(&scope.service.as_str()) {
        return Err(SigV4Error::Mismatch(format!(
            "Credential should be scoped to correct service: '{}'. ",
            services.first().copied().unwrap_or_default()
        )));
    }
    if !auth
        .signed_headers
        .iter()
        .any(|h| h == "host" || h == ":authority")
    {
        return Err(SigV4Error::Incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ));
    }
    let Some(amz_date) = header_str(headers, "x-amz-date") else {
        return Err(SigV4Error::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .to_owned(),
        ));
    };
    let when = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| {
            SigV4Error::Incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
            ))
        })?
        .and_utc();
    let fmt = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    if when < now - MAX_CLOCK_SKEW {
        return Err(SigV4Error::Expired(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            fmt(now - MAX_CLOCK_SKEW),
            fmt(now)
        )));
    }
    if when > now + MAX_CLOCK_SKEW {
        return Err(SigV4Error::Expired(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            fmt(now + MAX_CLOCK_SKEW),
            fmt(now)
        )));
    }
    if !amz_date.starts_with(&scope.date) || scope.date.len() != 8 {
        return Err(SigV4Error::Mismatch(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
            scope.date,
            &amz_date[..8.min(amz_date.len())]
        )));
    }
    Ok(amz_date)
}

#[cfg(test)]
mod tests;
