//! Model identifiers as clients send them (plain ids, versioned ids, foundation-model ARNs,
//! system inference profiles by id or ARN), resolved once into the catalog entry they name.

use crate::error::INVALID_MODEL_ID;
use crate::{ApiError, Service};
use outcrop_models::CatalogEntry;

/// Resolves a model identifier as clients send it (a plain id or a foundation-model ARN) to
/// the plain model id.
pub fn resolve_model_id(identifier: &str) -> Option<&str> {
    if identifier.len() > 2048 {
        return None;
    }
    match identifier.strip_prefix("arn:") {
        None => Some(identifier),
        Some(rest) => {
            // arn:aws:bedrock:{region}::foundation-model/{id} (the account field is empty)
            let mut parts = rest.splitn(5, ':');
            let (partition, service, _region, account, resource) = (
                parts.next()?,
                parts.next()?,
                parts.next()?,
                parts.next()?,
                parts.next()?,
            );
            // ...or {account}:inference-profile/{profile id}
            let (id, shared) = match resource.strip_prefix("foundation-model/") {
                Some(id) => (id, true),
                None => (resource.strip_prefix("inference-profile/")?, false),
            };
            (partition.starts_with("aws")
                && service == "bedrock"
                && account.is_empty() == shared
                && !id.is_empty())
            .then_some(id)
        }
    }
}

/// A runtime model identifier resolved: the catalog entry, the geography of the system
/// inference profile it was called through, if any, and for an imported model its engine
/// (the catalog's models are served by the engines of their backing models).
#[derive(Clone, Copy)]
pub struct Resolved<'s> {
    pub entry: &'s CatalogEntry,
    pub geography: Option<&'s str>,
    pub engine: Option<&'s dyn outcrop_engine::Engine>,
}

impl Resolved<'_> {
    /// Whether this is an imported model (Custom Model Import) rather than a catalog model.
    pub fn is_imported(&self) -> bool {
        self.entry.format == crate::imports::IMPORTED_FORMAT
    }
}

impl Service {
    /// The catalog entry an identifier (plain id or foundation-model ARN) names, or Bedrock's
    /// "The provided model identifier is invalid."
    pub fn catalog_entry(&self, identifier: &str) -> Result<&CatalogEntry, ApiError> {
        resolve_model_id(identifier)
            .and_then(|id| self.catalog.get(id))
            .ok_or_else(|| ApiError::Validation(INVALID_MODEL_ID.into()))
    }

    /// The catalog entry a runtime identifier names: a plain id, a foundation-model ARN, or a
    /// system inference profile (id or ARN; then also its geography).
    pub fn resolve(&self, identifier: &str) -> Result<Resolved<'_>, ApiError> {
        let invalid = || ApiError::Validation(INVALID_MODEL_ID.into());
        let id = resolve_model_id(identifier).ok_or_else(invalid)?;
        if let Some(entry) = self.catalog.get(id) {
            return Ok(Resolved {
                entry,
                geography: None,
                engine: None,
            });
        }
        let (geo, entry) = self.catalog.profile(id).ok_or_else(invalid)?;
        Ok(Resolved {
            entry,
            geography: Some(geo),
            engine: None,
        })
    }

    /// Whether a catalog model answers with embeddings.
    pub fn is_embedding(&self, model_id: &str) -> bool {
        self.catalog
            .get(model_id)
            .is_some_and(|e| e.output_modalities.iter().any(|m| m == "EMBEDDING"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_resolve_to_ids() {
        assert_eq!(
            resolve_model_id("anthropic.claude-v2"),
            Some("anthropic.claude-v2")
        );
        assert_eq!(
            resolve_model_id("arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-v2:1"),
            Some("anthropic.claude-v2:1")
        );
        assert_eq!(
            resolve_model_id("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc"),
            None
        );
        assert_eq!(resolve_model_id("arn:aws:s3:::bucket"), None);
        assert_eq!(
            resolve_model_id("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0"),
            Some("us.meta.llama3-2-1b-instruct-v1:0")
        );
        assert_eq!(
            resolve_model_id("arn:aws:bedrock:us-east-1::inference-profile/us.x"),
            None
        );
        assert_eq!(resolve_model_id(&"a".repeat(2049)), None);
    }
}
