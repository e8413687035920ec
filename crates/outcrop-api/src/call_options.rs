//! What a runtime call's headers ask for besides its body: a deterministic answer, a service
//! tier and latency setting (InvokeModel), request metadata for the invocation log, and
//! guardrails, which Outcrop does not evaluate and so refuses rather than ignores.

use crate::{tier, ApiError, DETERMINISTIC_HEADER};
use axum::http::HeaderMap;
use serde_json::{Map, Value};

pub const SERVICE_TIER_HEADER: &str = "x-amzn-bedrock-service-tier";
pub const LATENCY_HEADER: &str = "x-amzn-bedrock-performanceconfig-latency";
pub const REQUEST_METADATA_HEADER: &str = "x-amzn-bedrock-request-metadata";
const GUARDRAIL_HEADER: &str = "x-amzn-bedrock-guardrailidentifier";
const GUARDRAIL_VERSION_HEADER: &str = "x-amzn-bedrock-guardrailversion";

/// Header options of one call, validated.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    pub deterministic: bool,
    pub service_tier: Option<&'static str>,
    pub latency: Option<&'static str>,
    pub request_metadata: Option<Value>,
    /// The headers sent on with the body when the model is served upstream.
    pub forward: Vec<(String, String)>,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::Validation(format!("The {name} header must be printable ASCII text."))
            })
        })
        .transpose()
}

impl CallOptions {
    /// Reads the options; `deterministic` is the server-wide setting.
    pub fn from_headers(headers: &HeaderMap, deterministic: bool) -> Result<Self, ApiError> {
        if let Some(id) = header(headers, GUARDRAIL_HEADER)? {
            let version = header(headers, GUARDRAIL_VERSION_HEADER)?.unwrap_or("DRAFT");
            return Err(guardrail_refused(id, version));
        }
        let deterministic = deterministic
            || header(headers, DETERMINISTIC_HEADER)?
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let service_tier = header(headers, SERVICE_TIER_HEADER)?
            .map(|t| tier::parse(t, "X-Amzn-Bedrock-Service-Tier"))
            .transpose()?;
        let latency = header(headers, LATENCY_HEADER)?
            .map(|l| tier::latency(l, "X-Amzn-Bedrock-PerformanceConfig-Latency"))
            .transpose()?;
        let request_metadata = match header(headers, REQUEST_METADATA_HEADER)? {
            None => None,
            Some(text) => {
                let v: Value = serde_json::from_str(text).map_err(|_| {
                    ApiError::Validation(
                        "The X-Amzn-Bedrock-Request-Metadata header must be a JSON object of string keys and string values.".into(),
                    )
                })?;
                Some(request_metadata(&v, "X-Amzn-Bedrock-Request-Metadata")?)
            }
        };
        let forward = crate::relay::FORWARDED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?.to_str().ok()?;
                Some(((*name).to_owned(), value.to_owned()))
            })
            .collect();
        Ok(CallOptions {
            deterministic,
            service_tier,
            latency,
            request_metadata,
            forward,
        })
    }
}

/// The refusal of a call that names a guardrail: answering it unchecked would let content
/// through that the guardrail exists to stop.
pub fn guardrail_refused(id: &str, version: &str) -> ApiError {
    ApiError::Validation(format!(
        "The guardrail {id} (version {version}) cannot be applied: this Outcrop server does not evaluate guardrails, so calls that name one are refused instead of answered unchecked. Remove the guardrail from the request to call the model without it."
    ))
}

/// Request metadata (Converse `requestMetadata`, or its header): at most 16 string pairs,
/// keys of 1 to 256 characters, values of at most 256.
pub fn request_metadata(v: &Value, path: &str) -> Result<Value, ApiError> {
    let bad = || {
        ApiError::Validation(format!(
            "The value at '{path}' must be a map of at most 16 entries whose keys (1 to 256 characters) and values (at most 256 characters) are strings."
        ))
    };
    let map: &Map<String, Value> = v.as_object().ok_or_else(bad)?;
    if map.len() > 16 {
        return Err(bad());
    }
    for (k, v) in map {
        let ok = (1..=256).contains(&k.chars().count())
            && v.as_str().is_some_and(|s| s.chars().count() <= 256);
        if !ok {
            return Err(bad());
        }
    }
    Ok(v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn options_from_headers() {
        let o = CallOptions::from_headers(
            &headers(&[
                ("x-amzn-bedrock-service-tier", "flex"),
                ("x-amzn-bedrock-performanceconfig-latency", "optimized"),
                ("x-amzn-bedrock-request-metadata", r#"{"team": "search"}"#),
                ("x-outcrop-deterministic", "true"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(o.service_tier, Some("flex"));
        assert_eq!(o.latency, Some("optimized"));
        assert_eq!(o.request_metadata, Some(json!({"team": "search"})));
        assert!(o.deterministic);
        assert!(CallOptions::from_headers(
            &headers(&[("x-amzn-bedrock-service-tier", "gold")]),
            false
        )
        .is_err());
        assert!(CallOptions::from_headers(
            &headers(&[("x-amzn-bedrock-request-metadata", r#"{"n": 1}"#)]),
            false
        )
        .is_err());
    }

    #[test]
    fn guardrails_are_refused_by_name() {
        let e = CallOptions::from_headers(
            &headers(&[
                ("x-amzn-bedrock-guardrailidentifier", "gr-123"),
                ("x-amzn-bedrock-guardrailversion", "2"),
            ]),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gr-123 (version 2)"), "{e}");
    }

    #[test]
    fn metadata_limits() {
        assert!(request_metadata(&json!({"a": "b"}), "requestMetadata").is_ok());
        assert!(request_metadata(&json!({"": "b"}), "requestMetadata").is_err());
        assert!(request_metadata(&json!({"a": "x".repeat(257)}), "requestMetadata").is_err());
        let many: Map<String, Value> = (0..17).map(|i| (i.to_string(), json!("v"))).collect();
        assert!(request_metadata(&Value::Object(many), "requestMetadata").is_err());
    }
}
