//! SigV4 query authentication (presigned URLs): the signature and its scope travel in the
//! query string, with an expiry, and the payload is not signed.

use crate::authorization::parse_credential;
use crate::canonical::canonical_request;
use crate::error::SIGNATURE_MISMATCH;
use crate::verify::{hmac, signing_key, string_to_sign};
use crate::{Authorization, SecretKey, SigV4Error, Verified, MAX_CLOCK_SKEW};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use percent_encoding::percent_decode_str;
use subtle::ConstantTimeEq;

/// The payload hashes a presigning client may have used: botocore hashes the empty body of an
/// https request, other SDKs write the constant AWS documents for presigned URLs.
const PAYLOADS: &[&str] = &[
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "UNSIGNED-PAYLOAD",
];

/// The signature parameters of a presigned URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub authorization: Authorization,
    /// `X-Amz-Date`, ISO-8601 basic format.
    pub amz_date: String,
    /// `X-Amz-Expires`: how long after `amz_date` the URL is valid.
    pub expires: TimeDelta,
    /// `X-Amz-Security-Token`, for temporary credentials.
    pub security_token: Option<String>,
}

impl Presigned {
    /// Reads the `X-Amz-*` parameters of a raw query string.
    pub fn parse(raw_query: &str) -> Result<Self, SigV4Error> {
        let param = |name: &str| {
            raw_query.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == name).then(|| percent_decode_str(v).decode_utf8_lossy().into_owned())
            })
        };
        let missing =
            |name: &str| SigV4Error::Incomplete(format!("Presigned URL requires '{name}'."));
        let algorithm = param("X-Amz-Algorithm").ok_or_else(|| missing("X-Amz-Algorithm"))?;
        if algorithm != "AWS4-HMAC-SHA256" {
            return Err(SigV4Error::Incomplete(format!(
                "Unsupported algorithm '{algorithm}'."
            )));
        }
        let credential = param("X-Amz-Credential").ok_or_else(|| missing("X-Amz-Credential"))?;
        let signed_headers =
            param("X-Amz-SignedHeaders").ok_or_else(|| missing("X-Amz-SignedHeaders"))?;
        let signature = param("X-Amz-Signature").ok_or_else(|| missing("X-Amz-Signature"))?;
        let amz_date = param("X-Amz-Date").ok_or_else(|| missing("X-Amz-Date"))?;
        let expires = param("X-Amz-Expires").ok_or_else(|| missing("X-Amz-Expires"))?;
        let expires = expires.parse::<u32>().map_err(|_| {
            SigV4Error::Incomplete(format!(
                "X-Amz-Expires '{expires}' is not a number of seconds."
            ))
        })?;
        Ok(Presigned {
            authorization: Authorization {
                credential: parse_credential(&credential)?,
                signed_headers: signed_headers
                    .split(';')
                    .filter(|h| !h.is_empty())
                    .map(str::to_ascii_lowercase)
                    .collect(),
                signature,
            },
            amz_date,
            expires: TimeDelta::seconds(expires.into()),
            security_token: param("X-Amz-Security-Token"),
        })
    }
}

/// Verifies a presigned request: the signature over `method`, `raw_path`, the query without
/// `X-Amz-Signature` and the signed `headers`; the scope's service; and the validity window
/// (`X-Amz-Date` not in the future beyond the clock skew, `X-Amz-Expires` at most
/// `max_expires`, and not yet passed).
#[allow(clippy::too_many_arguments)]
pub fn verify_presigned(
    presigned: &Presigned,
    secret: &SecretKey,
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &http::HeaderMap,
    services: &[&str],
    max_expires: TimeDelta,
    now: DateTime<Utc>,
) -> Result<Verified, SigV4Error> {
    let auth = &presigned.authorization;
    let scope = &auth.credential;
    if !services.contains(&scope.service.as_str()) {
        return Err(SigV4Error::Mismatch(format!(
            "Credential should be scoped to correct service: '{}'. ",
            services.first().copied().unwrap_or_default()
        )));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(SigV4Error::Incomplete(
            "'Host' must be a 'SignedHeader' in the presigned URL.".to_owned(),
        ));
    }
    let when = NaiveDateTime::parse_from_str(&presigned.amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| {
            SigV4Error::Incomplete(format!(
                "X-Amz-Date must be in ISO-8601 'basic format'. Got '{}'.",
                presigned.amz_date
            ))
        })?
        .and_utc();
    if !presigned.amz_date.starts_with(&scope.date) || scope.date.len() != 8 {
        return Err(SigV4Error::Mismatch(
            "Date in Credential scope does not match X-Amz-Date.".to_owned(),
        ));
    }
    if presigned.expires > max_expires {
        return Err(SigV4Error::Expired(format!(
            "X-Amz-Expires must be at most {} seconds.",
            max_expires.num_seconds()
        )));
    }
    if when > now + MAX_CLOCK_SKEW {
        return Err(SigV4Error::Expired("Request is not yet valid.".to_owned()));
    }
    if now > when + presigned.expires {
        return Err(SigV4Error::Expired("Request has expired.".to_owned()));
    }
    let unsigned_query: Vec<&str> = raw_query
        .split('&')
        .filter(|pair| !pair.starts_with("X-Amz-Signature="))
        .collect();
    let unsigned_query = unsigned_query.join("&");
    let key = signing_key(secret, &scope.date, &scope.region, &scope.service);
    for payload in PAYLOADS {
        let canonical = canonical_request(
            method,
            raw_path,
            &unsigned_query,
            headers,
            None,
            &auth.signed_headers,
            payload,
        );
        let to_sign = string_to_sign(&presigned.amz_date, &scope.scope_string(), &canonical);
        let expected = hex::encode(hmac(&key, to_sign.as_bytes()));
        if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
            return Ok(Verified {
                access_key_id: scope.access_key_id.clone(),
                region: scope.region.clone(),
                service: scope.service.clone(),
            });
        }
    }
    Err(SigV4Error::Mismatch(SIGNATURE_MISMATCH.to_owned()))
}

#[cfg(test)]
mod tests;
