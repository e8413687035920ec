use serde::Deserialize;
use std::collections::BTreeMap;

/// One Bedrock foundation model as Outcrop serves it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub id: String,
    pub name: String,
    pub provider: String,
    /// The InvokeModel body format this id speaks (`anthropic-text`, `meta-llama`, ...).
    pub format: String,
    /// The local model that answers for this id.
    pub backing_model: String,
    /// USD per 1,000 tokens, kept as decimal strings (never floats).
    pub input_price_per_1k: String,
    pub output_price_per_1k: String,
    /// `TEXT`, `IMAGE`, `EMBEDDING`, ... as Bedrock lists them.
    #[serde(default = "text_only")]
    pub input_modalities: Vec<String>,
    #[serde(default = "text_only")]
    pub output_modalities: Vec<String>,
    #[serde(default = "yes")]
    pub streaming: bool,
    /// `ACTIVE` or `LEGACY`.
    #[serde(default = "active")]
    pub lifecycle: String,
    /// Geographies (`us`, `eu`, `apac`, `global`) with a system inference profile
    /// `{geo}.{id}` for this model.
    #[serde(default)]
    pub inference_profiles: Vec<String>,
    /// Whether the plain id may be invoked; when false only an inference profile can be.
    #[serde(default = "yes")]
    pub on_demand: bool,
    /// The service tiers besides `default` this id serves, each with the factor its token
    /// prices are multiplied by (Bedrock: priority +75%, flex -50%). A tier not named here
    /// is refused for this id.
    #[serde(default = "tier_prices")]
    pub service_tiers: BTreeMap<String, String>,
    /// Bedrock prompt caching: present when the id takes cache checkpoints; a checkpoint
    /// with fewer prompt tokens before it caches nothing.
    #[serde(default)]
    pub cache_min_tokens: Option<u32>,
    /// USD per 1,000 tokens read from the cache and written to it (5-minute TTL).
    #[serde(default)]
    pub cache_read_price_per_1k: Option<String>,
    #[serde(default)]
    pub cache_write_price_per_1k: Option<String>,
    /// Writes with a one-hour TTL; only ids with this price take `ttl: 1h`.
    #[serde(default)]
    pub cache_write_1h_price_per_1k: Option<String>,
    /// Whether a checkpoint may follow the tool definitions.
    #[serde(default = "yes")]
    pub cache_tools: bool,
    /// Whether Converse and the chat surfaces serve this id (it has a chat template).
    #[serde(default = "yes")]
    pub converse: bool,
}

fn tier_prices() -> BTreeMap<String, String> {
    [("priority", "1.75"), ("flex", "0.5"), ("reserved", "1")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn text_only() -> Vec<String> {
    vec!["TEXT".to_owned()]
}

fn yes() -> bool {
    true
}

fn active() -> String {
    "ACTIVE".to_owned()
}

/// Field overrides for a catalog entry, from the server config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogOverride {
    pub name: Option<String>,
    pub provider: Option<String>,
    pub format: Option<String>,
    pub backing_model: Option<String>,
    pub input_price_per_1k: Option<String>,
    pub output_price_per_1k: Option<String>,
    /// Replaces the id's service tiers and their price factors.
    pub service_tiers: Option<BTreeMap<String, String>>,
    pub cache_min_tokens: Option<u32>,
    pub cache_read_price_per_1k: Option<String>,
    pub cache_write_price_per_1k: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog: {0}")]
    Parse(String),
    #[error(
        "catalog: model {0} is new, so it needs name, provider, format, backing_model and prices"
    )]
    Incomplete(String),
}

/// The Bedrock model ids this instance serves.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
struct CatalogFile {
    model: Vec<CatalogEntry>,
}

impl Catalog {
    /// The catalog shipped in the binary: its chat ids backed by `chat_model` (default:
    /// [`crate::DEFAULT_MODEL`]), then `overrides` (by model id) applied.
    pub fn builtin_with(
        chat_model: Option<&str>,
        overrides: &BTreeMap<String, CatalogOverride>,
    ) -> Result<Self, CatalogError> {
        let file: CatalogFile = toml::from_str(include_str!("../catalog.toml"))
            .map_err(|e| CatalogError::Parse(e.to_string()))?;
        let mut entries = file.model;
        if let Some(chat) = chat_model {
            for e in entries
                .iter_mut()
                .filter(|e| e.backing_model == crate::DEFAULT_MODEL)
            {
                e.backing_model = chat.to_owned();
            }
        }
        for (id, o) in overrides {
            match entries.iter_mut().find(|e| &e.id == id) {
                Some(e) => {
                    let set = |field: &mut String, v: &Option<String>| {
                        if let Some(v) = v {
                            field.clone_from(v);
                        }
                    };
                    set(&mut e.name, &o.name);
                    set(&mut e.provider, &o.provider);
                    set(&mut e.format, &o.format);
                    set(&mut e.backing_model, &o.backing_model);
                    set(&mut e.input_price_per_1k, &o.input_price_per_1k);
                    set(&mut e.output_price_per_1k, &o.output_price_per_1k);
                    if let Some(t) = &o.service_tiers {
                        e.service_tiers.clone_from(t);
                    }
                    if o.cache_min_tokens.is_some() {
                        e.cache_min_tokens = o.cache_min_tokens;
                    }
                    if o.cache_read_price_per_1k.is_some() {
                        e.cache_read_price_per_1k
                            .clone_from(&o.cache_read_price_per_1k);
                    }
                    if o.cache_write_price_per_1k.is_some() {
                        e.cache_write_price_per_1k
                            .clone_from(&o.cache_write_price_per_1k);
                    }
                }
                None => entries.push(CatalogEntry {
                    id: id.clone(),
                    name: o
                        .name
                        .clone()
                        .ok_or_else(|| CatalogError::Incomplete(id.clone()))?,
                    provider: o
                        .provider
                        .clone()
                        .ok_or_else(|| CatalogError::Incomplete(id.clone()))?,
                    format: o
                        .format
                        .clone()
                        .ok_or_else(|| CatalogError::Incomplete(id.clone()))?,
                    backing_model: o
                        .backing_model
                        .clone()
                        .ok_or_else(|| CatalogError::Incomplete(id.clone()))?,
                    input_price_per_1k: o
                        .input_price_per_1k
                        .clone()
                        .ok_or_else(|| CatalogError::Incomplete(id.clone()))?,
                    output_price_per_1k: o
                        .output_price_per_1k
                        .clone()
                        .ok_or_else(|| CatalogError::Incomplete(id.clone()))?,
                    input_modalities: text_only(),
                    output_modalities: text_only(),
                    streaming: true,
                    lifecycle: active(),
                    inference_profiles: Vec::new(),
                    on_demand: true,
                    service_tiers: o.service_tiers.clone().unwrap_or_else(tier_prices),
                    cache_min_tokens: o.cache_min_tokens,
                    cache_read_price_per_1k: o.cache_read_price_per_1k.clone(),
                    cache_write_price_per_1k: o.cache_write_price_per_1k.clone(),
                    cache_write_1h_price_per_1k: None,
                    cache_tools: true,
                    converse: true,
                }),
            }
        }
        Ok(Catalog { entries })
    }

    pub fn get(&self, model_id: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.id == model_id)
    }

    /// The entry behind a system inference profile id (`us.anthropic.claude-...`), with the
    /// profile's geography, when the model has a profile there.
    pub fn profile(&self, profile_id: &str) -> Option<(&str, &CatalogEntry)> {
        let (geo, model_id) = profile_id.split_once('.')?;
        let entry = self.get(model_id)?;
        entry
            .inference_profiles
            .iter()
            .find(|g| *g == geo)
            .map(|g| (g.as_str(), entry))
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// The distinct local models that back the catalog.
    pub fn backing_models(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .entries
            .iter()
            .map(|e| e.backing_model.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_the_seed_models() {
        let c = Catalog::builtin_with(None, &BTreeMap::new()).unwrap();
        for id in [
            "anthropic.claude-v2",
            "anthropic.claude-v2:1",
            "anthropic.claude-instant-v1",
        ] {
            assert_eq!(c.get(id).unwrap().backing_model, crate::DEFAULT_MODEL);
        }
        assert_eq!(
            c.get("anthropic.claude-v2").unwrap().input_price_per_1k,
            "0.008"
        );
        assert_eq!(
            c.backing_models(),
            vec![crate::DEFAULT_EMBEDDING_MODEL, crate::DEFAULT_MODEL]
        );
    }

    #[test]
    fn the_chat_model_backs_every_chat_id_and_overrides_win() {
        let o = BTreeMap::from([(
            "meta.llama3-8b-instruct-v1:0".to_owned(),
            CatalogOverride {
                backing_model: Some(crate::DEFAULT_MODEL.into()),
                ..Default::default()
            },
        )]);
        let c = Catalog::builtin_with(Some(crate::TINY_MODEL), &o).unwrap();
        assert_eq!(
            c.get("anthropic.claude-v2").unwrap().backing_model,
            crate::TINY_MODEL
        );
        assert_eq!(
            c.get("meta.llama3-8b-instruct-v1:0").unwrap().backing_model,
            crate::DEFAULT_MODEL
        );
        assert_eq!(
            c.get("amazon.titan-embed-text-v2:0").unwrap().backing_model,
            crate::DEFAULT_EMBEDDING_MODEL
        );
    }

    #[test]
    fn builtin_lists_every_wire_doc_id_once() {
        let c = Catalog::builtin_with(None, &BTreeMap::new()).unwrap();
        for id in [
            "ai21.j2-ultra-v1",
            "ai21.j2-mid-v1",
            "amazon.titan-text-express-v1",
            "amazon.titan-text-lite-v1",
            "meta.llama2-13b-chat-v1",
            "meta.llama2-70b-chat-v1",
            "meta.llama3-8b-instruct-v1:0",
            "meta.llama3-70b-instruct-v1:0",
            "mistral.mistral-7b-instruct-v0:2",
            "mistral.mixtral-8x7b-instruct-v0:1",
            "cohere.command-text-v14",
            "cohere.command-light-text-v14",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "amazon.nova-pro-v1:0",
        ] {
            assert!(c.get(id).is_some(), "{id}");
        }
        let mut ids: Vec<&str> = c.entries().iter().map(|e| e.id.as_str()).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate ids");
    }

    #[test]
    fn inference_profiles_resolve_only_in_their_geographies() {
        let c = Catalog::builtin_with(None, &BTreeMap::new()).unwrap();
        let (geo, e) = c
            .profile("us.anthropic.claude-3-haiku-20240307-v1:0")
            .unwrap();
        assert_eq!(
            (geo, e.id.as_str()),
            ("us", "anthropic.claude-3-haiku-20240307-v1:0")
        );
        assert!(c
            .profile("global.anthropic.claude-sonnet-4-5-20250929-v1:0")
            .is_some());
        assert!(c
            .profile("global.anthropic.claude-3-haiku-20240307-v1:0")
            .is_none());
        assert!(c.profile("us.anthropic.claude-v2").is_none());
        assert!(c.profile("anthropic.claude-v2").is_none());
    }

    #[test]
    fn overrides_change_and_add_entries() {
        let mut o = BTreeMap::new();
        o.insert(
            "anthropic.claude-v2".into(),
            CatalogOverride {
                backing_model: Some("gemma".into()),
                ..Default::default()
            },
        );
        let c = Catalog::builtin_with(None, &o).unwrap();
        assert_eq!(c.get("anthropic.claude-v2").unwrap().backing_model, "gemma");
        o.insert(
            "acme.new-v1".into(),
            CatalogOverride {
                backing_model: Some("x".into()),
                ..Default::default()
            },
        );
        assert!(matches!(
            Catalog::builtin_with(None, &o),
            Err(CatalogError::Incomplete(_))
        ));
    }
}
