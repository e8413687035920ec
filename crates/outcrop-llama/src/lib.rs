//! The in-process llama.cpp engine, through the `llama-cpp-2` bindings.
//!
//! All FFI `unsafe` lives inside `llama-cpp-2`/`llama-cpp-sys-2`; this crate is the only one in
//! the workspace that depends on them, and it contains no `unsafe` of its own.
//!
//! A llama.cpp context is not `Send` and borrows its model, so [`run_engine`] loads the model
//! and context on the calling thread and hands a [`LlamaExecutor`] to the caller's closure,
//! which normally runs the scheduler's work queue on that same thread until shutdown.

#![forbid(unsafe_code)]

mod executor;
mod grammar;
mod prompt;
mod template;

pub use executor::LlamaExecutor;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::OnceLock;

/// How to load one backing model.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Name used in logs and health output.
    pub name: String,
    pub model_path: PathBuf,
    /// Context window of each sequence in tokens; `None` uses the model's training context.
    pub context_tokens: Option<u32>,
    /// Sequences decoded together (continuous-batching slots).
    pub sequences: u32,
    /// KV cells shared by all sequences; `None`: one context's worth.
    pub kv_tokens: Option<u32>,
    /// One KV pool shared by all sequences (`true`), or a separate stream of
    /// `context_tokens` cells per sequence (`false`; memory = parallel x context).
    pub kv_unified: bool,
    /// CPU threads for decoding; `None` uses every available core.
    pub threads: Option<u32>,
    /// Most tokens decoded in one llama.cpp call (the scheduler's step budget).
    pub batch_tokens: u32,
    /// Layers offloaded to a GPU (only with the `cuda` feature).
    pub gpu_layers: u32,
}

/// Why an engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("llama.cpp backend: {0}")]
    Backend(String),
    #[error("model file {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("context for {name}: {reason}")]
    Context { name: String, reason: String },
}

/// llama.cpp's backend may be initialised once per process; every engine thread shares it.
fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Backend(e.clone()))
}

/// Loads the model and a context on this thread, then calls `serve` with the executor.
/// Returns when `serve` returns; the model is freed then.
pub fn run_engine<R>(
    config: &EngineConfig,
    serve: impl FnOnce(&mut LlamaExecutor<'_>) -> R,
) -> Result<R, EngineError> {
    let backend = backend()?;
    if !config.model_path.is_file() {
        return Err(EngineError::Load {
            path: config.model_path.clone(),
            reason: "no such file".into(),
        });
    }
    let model_params = LlamaModelParams::default().with_n_gpu_layers(config.gpu_layers);
    let model =
        LlamaModel::load_from_file(backend, &config.model_path, &model_params).map_err(|e| {
            EngineError::Load {
                path: config.model_path.clone(),
                reason: e.to_string(),
            }
        })?;
    let per_sequence = config
        .context_tokens
        .unwrap_or_else(|| model.n_ctx_train())
        .max(16);
    let sequences = config.sequences.max(1);
    // One KV pool shared by all sequences (llama.cpp's unified cache): memory follows the
    // pool, not slots x context, and a lone sequence decodes as fast as with one slot. The
    // scheduler reserves cells at admission so the pool never runs out mid-generation.
    let n_ctx = if config.kv_unified {
        config.kv_tokens.unwrap_or(per_sequence).max(per_sequence)
    } else {
        per_sequence.saturating_mul(sequences)
    };
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
        .max(1) as i32;
    // A step holds the budget plus one token per generating sequence at most.
    let batch = config.batch_tokens.max(16) + sequences;
    let ctx_params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(batch)
        .with_n_ubatch(batch.min(512))
        .with_n_seq_max(sequences)
        .with_kv_unified(config.kv_unified)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let ctx = model
        .new_context(backend, ctx_params)
        .map_err(|e| EngineError::Context {
            name: config.name.clone(),
            reason: e.to_string(),
        })?;
    tracing::info!(model = %config.name, path = %config.model_path.display(), per_sequence, sequences, threads, "model loaded");
    let mut exec = LlamaExecutor::new(
        config.name.clone(),
        &model,
        ctx,
        batch as usize,
        sequences,
        per_sequence,
        config.kv_unified,
    );
    Ok(serve(&mut exec))
}
