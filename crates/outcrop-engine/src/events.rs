//! What a generation reports, and the errors of running one.

use outcrop_types::{GenerationError, StopReason, Usage};
use tokio::sync::mpsc;

/// What a generation reports, in order: `Started`, any number of `Text`, then `Finished`;
/// or `Failed` at any point, after which nothing follows.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// The prompt was admitted; its size in the backing model's tokens.
    Started {
        input_tokens: u32,
    },
    /// Text safe to show (never part of a stop sequence).
    Text(String),
    Finished {
        reason: StopReason,
        usage: Usage,
    },
    Failed(GenerationError),
}

/// The receiving end of one generation. Dropping it cancels the generation.
pub type GenerationStream = mpsc::UnboundedReceiver<GenerationEvent>;

/// Why a request was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the request queue is full")]
    QueueFull,
    #[error("the engine has stopped")]
    Stopped,
}

/// A generation that was not accepted, failed, or ended without saying how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Generation(#[from] GenerationError),
    /// The stream closed before `Finished` or `Failed`: a bug in the engine.
    #[error("the generation ended without a result")]
    Vanished,
}

/// A whole generation's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub text: String,
    pub reason: StopReason,
    pub usage: Usage,
}

/// Reads a generation to its end and returns the whole text.
pub async fn collect(mut events: GenerationStream) -> Result<Generated, EngineError> {
    let mut text = String::new();
    while let Some(event) = events.recv().await {
        match event {
            GenerationEvent::Started { .. } => {}
            GenerationEvent::Text(t) => text.push_str(&t),
            GenerationEvent::Finished { reason, usage } => {
                return Ok(Generated {
                    text,
                    reason,
                    usage,
                })
            }
            GenerationEvent::Failed(e) => return Err(e.into()),
        }
    }
    Err(EngineError::Vanished)
}
