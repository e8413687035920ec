//! Service tiers (`serviceTier` in Converse, `X-Amzn-Bedrock-Service-Tier` on InvokeModel) and
//! latency-optimized inference (`performanceConfig.latency`). A tier is a scheduling class:
//! the engine admits waiting `priority` requests before `default` ones and those before
//! `flex`, and refuses `flex` first when its queue fills; the ledger prices the tokens with the
//! tier's factor from the catalog. Both settings are echoed where Bedrock echoes them.

use crate::error::constraint;
use crate::ApiError;
use outcrop_models::CatalogEntry;
use outcrop_types::ServiceTier;

/// Bedrock's tier names.
pub const TIERS: [&str; 4] = ["reserved", "priority", "default", "flex"];

/// A tier name as sent, checked against Bedrock's enum; `path` names the field or header.
pub fn parse(name: &str, path: &str) -> Result<&'static str, ApiError> {
    TIERS.iter().copied().find(|t| *t == name).ok_or_else(|| {
        constraint(
            &format!("'{name}'"),
            path,
            "Member must satisfy enum value set: [reserved, priority, default, flex]",
        )
    })
}

/// Refuses a tier the model id does not serve.
pub fn check(entry: &CatalogEntry, tier: &str) -> Result<(), ApiError> {
    if tier == "default" || entry.service_tiers.contains_key(tier) {
        return Ok(());
    }
    Err(ApiError::Validation(format!(
        "The model {} does not support the {tier} service tier. Try again with the default tier.",
        entry.id
    )))
}

/// The scheduling class of a tier name.
pub fn scheduling(tier: &str) -> ServiceTier {
    match tier {
        "priority" | "reserved" => ServiceTier::Priority,
        "flex" => ServiceTier::Flex,
        _ => ServiceTier::Default,
    }
}

/// `performanceConfig.latency` (or its header): `standard` or `optimized`.
pub fn latency(value: &str, path: &str) -> Result<&'static str, ApiError> {
    match value {
        "standard" => Ok("standard"),
        "optimized" => Ok("optimized"),
        other => Err(constraint(
            &format!("'{other}'"),
            path,
            "Member must satisfy enum value set: [standard, optimized]",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_classes() {
        assert_eq!(parse("flex", "serviceTier.type").unwrap(), "flex");
        assert_eq!(
            parse("gold", "serviceTier.type").unwrap_err().to_string(),
            "1 validation error detected: Value 'gold' at 'serviceTier.type' failed to satisfy constraint: Member must satisfy enum value set: [reserved, priority, default, flex]"
        );
        assert!(scheduling("priority") < scheduling("default"));
        assert!(scheduling("default") < scheduling("flex"));
        assert_eq!(scheduling("reserved"), ServiceTier::Priority);
        assert!(latency("fast", "performanceConfig.latency").is_err());
    }

    #[test]
    fn tiers_a_model_does_not_serve_are_refused() {
        let catalog =
            outcrop_models::Catalog::builtin_with(None, &std::collections::BTreeMap::new())
                .unwrap();
        let mut entry = catalog.get("anthropic.claude-v2").unwrap().clone();
        assert!(check(&entry, "flex").is_ok());
        entry.service_tiers.remove("flex");
        assert!(check(&entry, "flex")
            .unwrap_err()
            .to_string()
            .contains("does not support the flex service tier"));
        assert!(check(&entry, "default").is_ok());
    }
}
