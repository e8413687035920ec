//! Bedrock prompt caching at the edge: checkpoints read from Converse `cachePoint` blocks and
//! Anthropic `cache_control` fields, checked against what the model id takes, and the cache
//! token counts as each wire shape reports them.

use crate::ApiError;
use axum::http::HeaderMap;
use outcrop_models::CatalogEntry;
use outcrop_types::{CacheAt, CachePoint, CacheTtl, PromptCache, Usage};
use serde_json::{json, Value};

/// Bedrock (as Anthropic) takes at most this many checkpoints in one request.
pub const MAX_CHECKPOINTS: usize = 4;

/// Bedrock's answer to a checkpoint sent to a model without prompt caching (403).
pub const UNSUPPORTED: &str =
    "You invoked an unsupported model or your request did not allow prompt caching.";

/// The checkpoints of one request, collected while it is parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoints {
    points: Vec<CachePoint>,
    on_tools: bool,
}

impl Checkpoints {
    pub fn push(&mut self, at: CacheAt, ttl: CacheTtl) {
        self.points.push(CachePoint { at, ttl });
    }

    /// A checkpoint after the tool definitions.
    pub fn after_tools(&mut self, ttl: CacheTtl) {
        self.on_tools = true;
        self.push(CacheAt::System, ttl);
    }

    /// Checks the checkpoints against the model id, as Bedrock does, and gives the engine's
    /// view of them.
    pub fn finish(self, entry: &CatalogEntry) -> Result<PromptCache, ApiError> {
        if self.points.is_empty() {
            return Ok(PromptCache::default());
        }
        let Some(min_tokens) = entry.cache_min_tokens else {
            return Err(ApiError::AccessDenied(UNSUPPORTED.into()));
        };
        if self.points.len() > MAX_CHECKPOINTS {
            return Err(ApiError::Validation(format!(
                "The model returned the following errors: A maximum of {MAX_CHECKPOINTS} blocks with cache_control may be provided. Found {}.",
                self.points.len()
            )));
        }
        if self.on_tools && !entry.cache_tools {
            return Err(ApiError::Validation(format!(
                "{} does not support prompt caching of tools. Remove the cachePoint from toolConfig.tools and try again.",
                entry.id
            )));
        }
        if self.points.iter().any(|p| p.ttl == CacheTtl::OneHour)
            && entry.cache_write_1h_price_per_1k.is_none()
        {
            return Err(ApiError::Validation(format!(
                "The model returned the following errors: {} does not support a cache ttl of 1h. Use ttl 5m or leave it out.",
                entry.id
            )));
        }
        // A one-hour checkpoint may not follow a five-minute one (Anthropic's rule).
        let mut seen_short = false;
        for p in &self.points {
            match p.ttl {
                CacheTtl::FiveMinutes => seen_short = true,
                CacheTtl::OneHour if seen_short => {
                    return Err(ApiError::Validation(
                        "The model returned the following errors: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block. Note that blocks are processed in the following order: `tools`, `system`, `messages`.".into(),
                    ))
                }
                CacheTtl::OneHour => {}
            }
        }
        Ok(PromptCache {
            points: self.points,
            min_tokens,
            // Set with the caller's account by [`scope`].
            scope: 0,
        })
    }
}

/// The cache scope of one account's calls to one model id: Bedrock keeps each account's
/// prompt cache apart, so a checkpoint another account wrote is not this one's cache read.
pub fn scope(account: &str, model_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (account, model_id).hash(&mut h);
    h.finish()
}

fn ttl(v: Option<&Value>, path: &str) -> Result<CacheTtl, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(CacheTtl::FiveMinutes),
        Some(Value::String(s)) if s == "5m" => Ok(CacheTtl::FiveMinutes),
        Some(Value::String(s)) if s == "1h" => Ok(CacheTtl::OneHour),
        Some(other) => Err(crate::error::constraint(
            &other.to_string().replace('"', "'"),
            &format!("{path}.ttl"),
            "Member must satisfy enum value set: [5m, 1h]",
        )),
    }
}

/// A Converse `cachePoint` block: `{"type": "default", "ttl"?: "5m" | "1h"}`.
pub fn cache_point(v: &Value, path: &str) -> Result<CacheTtl, ApiError> {
    let v = v
        .as_object()
        .ok_or_else(|| ApiError::Validation(format!("The value at '{path}' must be an object.")))?;
    match v.get("type").and_then(Value::as_str) {
        Some("default") => {}
        Some(other) => {
            return Err(crate::error::constraint(
                &format!("'{other}'"),
                &format!("{path}.type"),
                "Member must satisfy enum value set: [default]",
            ))
        }
        None => return Err(crate::error::not_null(&format!("{path}.type"))),
    }
    ttl(v.get("ttl"), path)
}

/// An Anthropic `cache_control` field: `{"type": "ephemeral", "ttl"?: "5m" | "1h"}`.
pub fn cache_control(v: &Value, path: &str) -> Result<CacheTtl, ApiError> {
    if v.get("type").and_then(Value::as_str) != Some("ephemeral") {
        return Err(ApiError::Validation(format!(
            "The model returned the following errors: {path}.type: Input should be 'ephemeral'"
        )));
    }
    ttl(v.get("ttl"), path)
}

/// Converse's `usage`, with the cache fields when the prompt cache was read or written.
pub fn converse_usage(usage: Usage) -> Value {
    let mut v = json!({
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.total_tokens(),
    });
    if usage.cache_read_input_tokens + usage.cache_write_input_tokens > 0 {
        v["cacheReadInputTokens"] = usage.cache_read_input_tokens.into();
        v["cacheWriteInputTokens"] = usage.cache_write_input_tokens.into();
        let details = details(usage);
        if !details.is_empty() {
            v["cacheDetails"] = details.into();
        }
    }
    v
}

/// The written tokens by TTL, as Converse's `cacheDetails`.
fn details(usage: Usage) -> Vec<Value> {
    let long = usage.cache_write_1h_input_tokens;
    let short = usage.cache_write_input_tokens - long;
    [(CacheTtl::OneHour, long), (CacheTtl::FiveMinutes, short)]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(ttl, n)| json!({ "ttl": ttl.as_str(), "inputTokens": n }))
        .collect()
}

/// The Anthropic Messages `usage` cache fields, when the call read or wrote the cache.
pub fn add_anthropic_usage(v: &mut Value, usage: Usage) {
    if usage.cache_read_input_tokens + usage.cache_write_input_tokens == 0 {
        return;
    }
    let long = usage.cache_write_1h_input_tokens;
    v["cache_creation_input_tokens"] = usage.cache_write_input_tokens.into();
    v["cache_read_input_tokens"] = usage.cache_read_input_tokens.into();
    v["cache_creation"] = json!({
        "ephemeral_5m_input_tokens": usage.cache_write_input_tokens - long,
        "ephemeral_1h_input_tokens": long,
    });
}

/// A stream's `amazon-bedrock-invocationMetrics` cache counts.
pub fn add_invocation_metrics(metrics: &mut Value, usage: Usage) {
    if usage.cache_read_input_tokens + usage.cache_write_input_tokens > 0 {
        metrics["cacheReadInputTokenCount"] = usage.cache_read_input_tokens.into();
        metrics["cacheWriteInputTokenCount"] = usage.cache_write_input_tokens.into();
    }
}

/// InvokeModel's cache count headers.
pub fn insert_headers(headers: &mut HeaderMap, usage: Usage) {
    if usage.cache_read_input_tokens + usage.cache_write_input_tokens > 0 {
        headers.insert(
            "x-amzn-bedrock-cache-read-input-token-count",
            usage.cache_read_input_tokens.into(),
        );
        headers.insert(
            "x-amzn-bedrock-cache-write-input-token-count",
            usage.cache_write_input_tokens.into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outcrop_models::Catalog;

    fn entry(id: &str) -> CatalogEntry {
        Catalog::builtin_with(None, &Default::default())
            .unwrap()
            .get(id)
            .unwrap()
            .clone()
    }

    fn points(n: usize, ttl: CacheTtl) -> Checkpoints {
        let mut c = Checkpoints::default();
        for _ in 0..n {
            c.push(CacheAt::System, ttl);
        }
        c
    }

    #[test]
    fn models_without_caching_refuse_checkpoints() {
        let e = entry("anthropic.claude-v2");
        let err = points(1, CacheTtl::FiveMinutes).finish(&e).unwrap_err();
        assert_eq!(err, ApiError::AccessDenied(UNSUPPORTED.into()));
        assert_eq!(
            Checkpoints::default().finish(&e).unwrap(),
            PromptCache::default()
        );
    }

    #[test]
    fn at_most_four_checkpoints() {
        let e = entry("anthropic.claude-3-7-sonnet-20250219-v1:0");
        let ok = points(4, CacheTtl::FiveMinutes).finish(&e).unwrap();
        assert_eq!((ok.points.len(), ok.min_tokens), (4, 1024));
        let err = points(5, CacheTtl::FiveMinutes).finish(&e).unwrap_err();
        assert!(matches!(err, ApiError::Validation(m) if m.contains("Found 5")));
    }

    #[test]
    fn nova_cannot_cache_tools_and_ttls_are_checked() {
        let nova = entry("amazon.nova-pro-v1:0");
        let mut c = Checkpoints::default();
        c.after_tools(CacheTtl::FiveMinutes);
        assert!(matches!(c.finish(&nova), Err(ApiError::Validation(_))));
        assert!(points(1, CacheTtl::OneHour).finish(&nova).is_err());
        let haiku = entry("anthropic.claude-haiku-4-5-20251001-v1:0");
        assert_eq!(
            points(1, CacheTtl::OneHour)
                .finish(&haiku)
                .unwrap()
                .min_tokens,
            4096
        );
        let mut wrong_order = points(1, CacheTtl::FiveMinutes);
        wrong_order.push(CacheAt::System, CacheTtl::OneHour);
        assert!(wrong_order.finish(&haiku).is_err());
    }

    #[test]
    fn wire_fields() {
        assert_eq!(
            cache_point(
                &json!({"type": "default", "ttl": "1h"}),
                "system.1.cachePoint"
            )
            .unwrap(),
            CacheTtl::OneHour
        );
        assert!(cache_point(&json!({"type": "other"}), "p").is_err());
        assert!(cache_point(&json!({"type": "default", "ttl": "2h"}), "p").is_err());
        assert!(cache_control(&json!({"type": "persistent"}), "p").is_err());
        let usage = Usage {
            input_tokens: 5,
            output_tokens: 2,
            cache_read_input_tokens: 100,
            cache_write_input_tokens: 30,
            cache_write_1h_input_tokens: 10,
        };
        let v = converse_usage(usage);
        assert_eq!(v["totalTokens"], 137);
        assert_eq!(
            v["cacheDetails"],
            json!([{"ttl": "1h", "inputTokens": 10}, {"ttl": "5m", "inputTokens": 20}])
        );
        assert!(converse_usage(Usage::new(3, 4))
            .get("cacheReadInputTokens")
            .is_none());
    }
}
