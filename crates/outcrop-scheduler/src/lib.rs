//! The scheduler: owns the [`Executor`] trait that engines implement and runs continuous
//! batching over it. Requests enter through a bounded queue ([`SchedulerHandle::submit`]
//! refuses at once when it is full); between decode steps, waiting requests are admitted into
//! free sequence slots; every step decodes one token for each generating sequence plus chunks
//! of admitted prompts, under a per-step token budget, so running streams keep flowing while
//! long prompts are processed. Token bytes become text here (UTF-8 reassembly, stop sequences
//! matched on decoded text). Dropping a [`GenerationStream`] cancels its generation: the slot
//! and its KV cells are freed at the next step.
//!
//! Engines are not `Send` (llama.cpp contexts belong to one thread), so an engine runs a
//! [`WorkQueue`] on its own thread; the async side holds a cloneable [`SchedulerHandle`].

#![forbid(unsafe_code)]

mod batch;
mod executor;
mod prefix;
mod queue;
mod stop;
mod utf8;

pub use executor::{Decode, Executor, PromptTokens, Sampled, SeqId};
pub use outcrop_engine::{GenerationEvent, GenerationStream, SubmitError};
/// The local engine: [`SchedulerHandle`] implements [`outcrop_engine::Engine`].
pub use queue::{channel, SchedulerConfig, SchedulerHandle, WorkQueue};
pub use stop::StopMatcher;
pub use utf8::Utf8Assembler;
