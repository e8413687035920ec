use outcrop_types::{CacheAt, GenerationError, ModelInfo, Prompt, Sampling};

/// A sequence slot of the engine (`0..ModelInfo::max_sequences`); each has its own KV cells
/// and sampler.
pub type SeqId = usize;

/// One sequence's share of a decode step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decode<'a> {
    pub seq: SeqId,
    /// A chunk of the prompt, or the one token sampled last step.
    pub tokens: &'a [u32],
    /// Position of `tokens[0]` in the sequence.
    pub pos: u32,
    /// Sample a token after the last of `tokens`.
    pub sample: bool,
}

/// A token sampled for one sequence in a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampled {
    pub seq: SeqId,
    pub token: u32,
    /// The model's end-of-generation token: not text, not counted.
    pub end_of_turn: bool,
    /// The token's text as bytes (possibly part of a UTF-8 character).
    pub piece: Vec<u8>,
}

/// A model engine as the scheduler drives it: several sequences advance together in one
/// `step`. Implementations live in engine crates (`outcrop-llama`); they run on one dedicated
/// thread and need not be `Send`.
pub trait Executor {
    /// Facts about the loaded model; `context_tokens` is per sequence.
    fn info(&self) -> ModelInfo;

    /// Renders the prompt in the model's own format and tokenizes it, with the token offset
    /// at which each of `checkpoints` falls (in their order).
    fn tokenize_prompt(
        &mut self,
        prompt: &Prompt,
        checkpoints: &[CacheAt],
    ) -> Result<PromptTokens, GenerationError>;

    /// Prepares slot `seq` for a new sequence: empty KV cells, a fresh sampler. Fails (and
    /// leaves the slot free) when the sampling constraint cannot be built.
    fn begin(&mut self, seq: SeqId, sampling: &Sampling) -> Result<(), GenerationError>;

    /// Decodes every entry of `work` in one batch and samples where asked, in `work` order.
    fn step(&mut self, work: &[Decode<'_>]) -> Result<Vec<Sampled>, GenerationError>;

    /// Frees slot `seq` (its KV cells) once its sequence ended or was cancelled.
    fn end(&mut self, seq: SeqId);

    /// Empties the whole KV cache, so that the next sequence is laid out from the first cell,
    /// as on a fresh context. Called only while no sequence runs.
    fn reset(&mut self) {}

    /// How many sequence ids past the slots may hold shared KV cells ([`Executor::share`]);
    /// 0 when cells cannot be shared (one KV stream per sequence), which disables prefix
    /// reuse.
    fn shared_sequences(&self) -> usize {
        0
    }

    /// Gives sequence `to` the cells that `from` holds at positions `start..end`, shared, not
    /// copied: both then attend to them. `to` may be a slot or an id past the slots.
    fn share(&mut self, from: SeqId, to: SeqId, start: u32, end: u32) {
        let _ = (from, to, start, end);
    }

    /// Drops an id past the slots from its cells (freed once no sequence holds them).
    fn forget(&mut self, seq: SeqId) {
        let _ = seq;
    }
}

/// A prompt in the model's tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptTokens {
    pub tokens: Vec<u32>,
    /// Where each requested checkpoint falls: the number of tokens before it.
    pub checkpoints: Vec<u32>,
}
