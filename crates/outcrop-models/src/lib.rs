//! Models: the Bedrock catalog (which Bedrock model ids exist and which local model backs
//! each), the known downloadable local models, and the model cache on disk.
//!
//! This crate knows nothing of HTTP or of any Bedrock body format.

#![forbid(unsafe_code)]

mod cache;
mod catalog;
mod expand;
mod gguf;
mod pull;
mod sources;

pub use cache::{cached_models, model_file, CachedModel};
pub use catalog::{Catalog, CatalogEntry, CatalogError, CatalogOverride};
pub use expand::{expand_q4_1, has_q4_1, q8_0_weights};
pub use gguf::{describe, Description};
pub use pull::{pull, PullError};
pub use sources::{
    source, ModelKind, ModelSource, WheelFile, WheelPart, DEFAULT_EMBEDDING_MODEL, DEFAULT_MODEL,
    SOURCES, TINY_MODEL,
};
