use outcrop_types::{GenerationError, ModelInfo, Prompt, Sampling};

/// Whether the engine should go on generating after a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Why the engine stopped on its own (or was stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineStop {
    /// The model produced an end-of-generation token (not counted, not emitted).
    EndOfTurn,
    /// `max_tokens` generated, or the context window is full.
    Limit,
    /// The caller's `emit` answered [`Flow::Stop`].
    Stopped,
}

/// What a finished generation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOutcome {
    pub stop: EngineStop,
    /// Tokens generated and emitted (the end-of-turn token is not counted).
    pub generated_tokens: u32,
}

/// A model engine as the scheduler drives it. Implementations live in engine crates
/// (`outcrop-llama`); they run on one dedicated thread and need not be `Send`.
pub trait Executor {
    /// Facts about the loaded model.
    fn info(&self) -> ModelInfo;

    /// Renders the prompt in the model's own format and tokenizes it.
    fn tokenize_prompt(&mut self, prompt: &Prompt) -> Result<Vec<u32>, GenerationError>;

    /// Generates up to `max_tokens` tokens after `prompt`, calling `emit` with the bytes of each
    /// token's text (possibly a partial UTF-8 sequence). Stops at end of turn, at the limit, or
    /// when `emit` answers [`Flow::Stop`].
    fn generate(
        &mut self,
        prompt: &[u32],
        sampling: &Sampling,
        max_tokens: u32,
        emit: &mut dyn FnMut(&[u8]) -> Flow,
    ) -> Result<EngineOutcome, GenerationError>;
}
