//! An embedding model loaded on its first request, as lazily loaded text models are: a server
//! whose text models are all remote reads no model file until an embedding is asked for.

use outcrop_embed::BertEmbedder;
use outcrop_types::{Embedder, Embedding, FaultKind, GenerationError};
use std::path::PathBuf;
use std::sync::OnceLock;

pub struct LazyEmbedder {
    name: String,
    dir: PathBuf,
    loaded: OnceLock<Option<BertEmbedder>>,
}

impl LazyEmbedder {
    pub fn new(name: &str, dir: PathBuf) -> Self {
        LazyEmbedder {
            name: name.to_owned(),
            dir,
            loaded: OnceLock::new(),
        }
    }

    /// The model, loaded by the first caller (others wait for it); `None` if it cannot load
    /// (logged once, with the reason).
    fn model(&self) -> Option<&BertEmbedder> {
        self.loaded
            .get_or_init(|| match BertEmbedder::load(&self.name, &self.dir) {
                Ok(e) => {
                    tracing::info!(model = %self.name, dimensions = e.dimensions(), "embedding model loaded");
                    Some(e)
                }
                Err(e) => {
                    tracing::error!(model = %self.name, dir = %self.dir.display(), error = %e, "embedding model could not load");
                    None
                }
            })
            .as_ref()
    }
}

impl Embedder for LazyEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.model().map_or(0, Embedder::dimensions)
    }

    fn embed(&self, text: &str) -> Result<Embedding, GenerationError> {
        match self.model() {
            Some(m) => m.embed(text),
            None => Err(GenerationError::Fault {
                kind: FaultKind::ServiceUnavailable,
                message: "The model is not available right now. Try again later.".into(),
            }),
        }
    }
}
