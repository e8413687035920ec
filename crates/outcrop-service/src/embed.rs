//! Embeddings: texts through a catalog model's embedding engine, each vector mapped to the
//! length the caller asked for (`outcrop_embed::resize`: exact for longer vectors, an
//! orthogonal projection for shorter ones).

use crate::{ApiError, Service};
use outcrop_embed::{normalize, resize};
pub use outcrop_embed::{quantize, Quantization};
use outcrop_models::CatalogEntry;
use outcrop_types::{Embedder, Embedding};
use std::sync::Arc;

/// Vectors for a batch of texts.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    /// One per text, in order, each of the length asked for.
    pub vectors: Vec<Vec<f32>>,
    /// All texts' size in the embedding model's tokens.
    pub input_tokens: u32,
}

/// Embeds `texts` with `entry`'s embedding model; vectors of `dims` values, scaled to unit
/// length when `unit`. At most `embed_slots` batches are computed at once.
pub async fn embed(
    state: &Service,
    entry: &CatalogEntry,
    texts: Vec<String>,
    dims: usize,
    unit: bool,
) -> Result<Embedded, ApiError> {
    let embedder: Arc<dyn Embedder> = state.embedders.get(&entry.backing_model).cloned().ok_or_else(|| {
        tracing::error!(model = %entry.backing_model, "catalog names an embedding model that is not loaded");
        ApiError::ServiceUnavailable("The model is not available right now. Try again later.".into())
    })?;
    let _permit = state
        .embed_slots
        .acquire()
        .await
        .map_err(|_| ApiError::Internal)?;
    let embeddings = tokio::task::spawn_blocking(move || {
        texts
            .iter()
            .map(|t| embedder.embed(t))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "embedding task failed");
        ApiError::Internal
    })??;
    Ok(Embedded {
        input_tokens: embeddings.iter().map(|e| e.input_tokens).sum(),
        vectors: embeddings.iter().map(|e| shaped(e, dims, unit)).collect(),
    })
}

/// One text's vector at the requested length.
fn shaped(e: &Embedding, dims: usize, unit: bool) -> Vec<f32> {
    let mut v = e.vector.clone();
    // The model's own output is unit length; the map keeps lengths for d >= 384.
    normalize(&mut v);
    let mut v = resize(&v, dims);
    if unit {
        normalize(&mut v);
    }
    v
}
