//! The scheduler: owns the [`Executor`] trait that engines implement, admits requests through a
//! bounded queue, and turns an engine's raw token bytes into text events, applying stop
//! sequences on decoded text.
//!
//! Engines are not `Send` (llama.cpp contexts belong to one thread), so an engine runs a
//! [`WorkQueue`] on its own thread; the async side holds a cloneable [`SchedulerHandle`].
//! Dropping the receiver of a [`GenerationStream`] cancels that generation at its next token.
//!
//! This first scheduler runs one generation at a time in arrival order. The trait and the
//! queue are the seam where continuous batching (several sequences per decode step) plugs in.

#![forbid(unsafe_code)]

mod executor;
mod queue;
mod stop;
mod utf8;

pub use executor::{EngineOutcome, EngineStop, Executor, Flow};
pub use queue::{
    channel, GenerationEvent, GenerationStream, SchedulerConfig, SchedulerHandle, SubmitError,
    WorkQueue,
};
pub use stop::StopMatcher;
pub use utf8::Utf8Assembler;
