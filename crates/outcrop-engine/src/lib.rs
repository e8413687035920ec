//! The engine seam: the unit that serves one backing model, at the level of a whole request.
//!
//! The wire and service layers hold an `Arc<dyn Engine>` per backing model and know nothing of
//! how it generates: the local llama.cpp scheduler (`outcrop-scheduler`) implements [`Engine`],
//! and so does [`FakeEngine`], a scripted engine with no model for tests of the layers above.
//! An engine that is an HTTP server, a recording or a script goes behind the same trait.

#![forbid(unsafe_code)]

mod events;
mod fake;

pub use events::{collect, EngineError, Generated, GenerationEvent, GenerationStream, SubmitError};
pub use fake::{answer, FakeEngine, Reply};

use async_trait::async_trait;
use outcrop_types::{GenerationError, GenerationRequest, ModelInfo, Prompt, Sampling};

/// What an engine reports about its load, read by health and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineGauges {
    /// Sequences holding a slot (prefilling or generating).
    pub active_sequences: usize,
    /// Requests accepted but not yet running.
    pub waiting: usize,
    /// KV cells reserved by running sequences.
    pub reserved_kv: usize,
    /// For an engine that is other servers: how many, and how many are healthy (0 for a
    /// local engine).
    pub endpoints: usize,
    pub healthy_endpoints: usize,
    /// KV cells and entries kept for prefix reuse (the prompt cache).
    pub cached_kv: usize,
    pub prefix_entries: usize,
    /// Counters: admissions that reused a stored prefix, that found none, stored prefixes
    /// evicted, and prompt tokens not computed thanks to reuse.
    pub prefix_hits: u64,
    pub prefix_misses: u64,
    pub prefix_evictions: u64,
    pub prefix_reused_tokens: u64,
}

/// Whether a backing model is in memory, as health and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadState {
    /// Not loaded; the first request loads it.
    Unloaded,
    Loading,
    Ready,
    /// It could not load, or its engine stopped; requests fail until it loads again.
    Failed,
}

impl LoadState {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadState::Unloaded => "unloaded",
            LoadState::Loading => "loading",
            LoadState::Ready => "ready",
            LoadState::Failed => "failed",
        }
    }
}

/// Serves one backing model. Cheap to share (`Arc<dyn Engine>`); every method is safe to call
/// from any task.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Starts a generation, or refuses at once (a full queue, a stopped engine). Events then
    /// arrive on the stream in order: `Started`, any number of `Text`, then `Finished`; or
    /// `Failed` at any point. Dropping the stream cancels the generation.
    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, SubmitError>;

    /// The model's facts once it serves; `None` while it is starting or after it stopped.
    fn model(&self) -> Option<ModelInfo>;

    /// Waits until the engine serves (or has stopped for good: then `None`).
    async fn wait_ready(&self) -> Option<ModelInfo>;

    fn gauges(&self) -> EngineGauges;

    /// Whether the model is in memory.
    fn load_state(&self) -> LoadState {
        if self.model().is_some() {
            LoadState::Ready
        } else {
            LoadState::Loading
        }
    }

    /// Bytes the model holds in memory (weights and KV cache, estimated), when known.
    fn memory(&self) -> Option<u64> {
        None
    }

    /// Ends every generation, running or waiting, with `GenerationError::ShuttingDown` and
    /// refuses new ones: the end of a shutdown's grace period.
    fn abort_all(&self);

    /// The prompt's size in the model's tokens, rendered exactly as a generation renders it.
    /// The default runs a generation of no tokens and reads its `Started` count; a prompt too
    /// long for the context still has its size counted.
    async fn count_tokens(&self, prompt: Prompt) -> Result<u32, EngineError> {
        let mut events = self.submit(GenerationRequest {
            prompt,
            max_tokens: 0,
            sampling: Sampling::greedy(),
            stop_sequences: Vec::new(),
            label: None,
            exclusive: false,
            tier: Default::default(),
            cache: Default::default(),
        })?;
        loop {
            match events.recv().await {
                Some(GenerationEvent::Started { input_tokens }) => return Ok(input_tokens),
                Some(GenerationEvent::Failed(GenerationError::InputTooLong {
                    prompt_tokens,
                    ..
                })) => return Ok(prompt_tokens),
                Some(GenerationEvent::Failed(e)) => return Err(e.into()),
                Some(_) => continue,
                None => return Err(EngineError::Vanished),
            }
        }
    }
}
