//! Engines that are other servers. [`OpenAiEngine`] serves a backing model from an
//! OpenAI-compatible HTTP server (vLLM, SGLang, TGI, llama-server, Ollama, or another
//! Outcrop's `/openai/v1`): the conversation as chat messages, sampling, stop sequences and
//! seeds passed through, a JSON-schema constraint as `response_format`, the answer streamed
//! back with the server's own token counts (`stream_options.include_usage`).

#![forbid(unsafe_code)]

mod openai;
mod pool;
mod sse;

pub use openai::{OpenAiConfig, OpenAiEngine};
