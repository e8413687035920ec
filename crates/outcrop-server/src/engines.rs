//! One engine thread per loaded local model, each running the scheduler's work queue; local
//! text models load on their first request (`lazy.rs`) unless `[engine] lazy_load = false`.

use crate::config::EngineKind;
use crate::lazy::{Budget, LazyEngine, Loaded};
use crate::Config;
use anyhow::{bail, Context};
use outcrop_embed::BertEmbedder;
use outcrop_engine::Engine;
use outcrop_llama::{run_engine, EngineConfig};
use outcrop_models::Catalog;
use outcrop_scheduler::SchedulerConfig;
use outcrop_types::Embedder;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct Engines {
    handles: HashMap<String, Arc<dyn Engine>>,
    embedders: HashMap<String, Arc<dyn Embedder>>,
    threads: Vec<JoinHandle<()>>,
    lazies: Vec<LazyEngine>,
    /// Shared by every lazily loaded model, imported ones included.
    budget: Arc<Budget>,
    /// Threads each local text model gets unless configured.
    share: u32,
}

impl Engines {
    pub fn handles(&self) -> HashMap<String, Arc<dyn Engine>> {
        self.handles.clone()
    }

    pub fn embedders(&self) -> HashMap<String, Arc<dyn Embedder>> {
        self.embedders.clone()
    }

    /// The memory budget lazily loaded models share, and the threads each gets unless
    /// configured: what imported models are loaded under.
    pub fn budget(&self) -> (Arc<Budget>, u32) {
        (self.budget.clone(), self.share)
    }

    /// Unloads the lazily loaded models, drops the last handles, which ends each work queue,
    /// and waits for the threads.
    pub async fn stop(self) {
        for lazy in &self.lazies {
            lazy.stop().await;
        }
        drop(self.handles);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Finds (pulling when allowed) and loads every model the catalog needs; returns once all run.
pub async fn start(config: &Config, catalog: &Catalog) -> anyhow::Result<Engines> {
    let mut handles = HashMap::new();
    let mut embedders: HashMap<String, Arc<dyn Embedder>> = HashMap::new();
    let mut threads = Vec::new();
    // Script engines answer for their backing model names; the models they fall back on load
    // like any other.
    let text_models: Vec<&str> = catalog
        .entries()
        .iter()
        .filter(|e| !e.output_modalities.iter().any(|m| m == "EMBEDDING"))
        .map(|e| e.backing_model.as_str())
        .collect();
    let script = |name: &str| -> Option<(Option<&PathBuf>, Option<&str>)> {
        match config.backing_models.get(name) {
            Some(m) if m.engine == EngineKind::Script => {
                Some((m.script.as_ref(), m.fallback.as_deref()))
            }
            Some(m) if m.path.is_some() || crate::relays::is_relay(m) => None,
            _ => config
                .engine
                .script
                .as_ref()
                .filter(|_| text_models.contains(&name))
                .map(|path| (Some(path), None)),
        }
    };
    let remote = |name: &str| {
        config
            .backing_models
            .get(name)
            .filter(|m| m.engine == EngineKind::OpenAi)
    };
    let relayed = |name: &str| {
        config
            .backing_models
            .get(name)
            .is_some_and(crate::relays::is_relay)
    };
    let mut local: Vec<&str> = catalog
        .backing_models()
        .into_iter()
        .filter(|name| script(name).is_none() && remote(name).is_none() && !relayed(name))
        .collect();
    for name in catalog.backing_models() {
        if let Some(fallback) = script(name).and_then(|(_, f)| f) {
            if script(fallback).is_some() || relayed(fallback) {
                bail!("[backing_models.{name}] fallback {fallback} is a script or served upstream: name a local or OpenAI-compatible model");
            }
            if !local.contains(&fallback) && remote(fallback).is_none() {
                local.push(fallback);
            }
        }
    }
    let limit = config
        .engine
        .memory_budget
        .as_deref()
        .map(crate::config::parse_size)
        .transpose()
        .map_err(|e| anyhow::anyhow!("[engine] memory_budget: {e}"))?;
    let budget = Budget::new(limit);
    let mut texts = Vec::new();
    for name in local {
        let path = model_path(config, name).await?;
        // A directory holds a safetensors embedding model; a file is a GGUF for llama.cpp.
        if path.is_dir() && config.engine.lazy_load {
            tracing::info!(model = name, "embedding model loads on its first request");
            embedders.insert(
                name.to_owned(),
                Arc::new(crate::lazy_embed::LazyEmbedder::new(name, path)),
            );
            continue;
        }
        if path.is_dir() {
            let owned = name.to_owned();
            let embedder = tokio::task::spawn_blocking(move || BertEmbedder::load(&owned, &path))
                .await?
                .with_context(|| format!("loading embedding model {name}"))?;
            tracing::info!(
                model = name,
                dimensions = embedder.dimensions(),
                "embedding model loaded"
            );
            embedders.insert(name.to_owned(), Arc::new(embedder));
            continue;
        }
        let path = if config.engine.expand_q4_1 && config.engine.gpu_layers == 0 {
            cpu_weights(config, name, path).await
        } else {
            path
        };
        texts.push((name, path));
    }
    // The cores are shared among the local text models unless threads are configured.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let share = (cores / texts.len().max(1) as u32).max(1);
    let mut lazies = Vec::new();
    for (name, path) in texts {
        let (engine, scheduler) = settings(config, name, path, share);
        if !config.engine.lazy_load {
            let loaded = load(engine, scheduler).await?;
            handles.insert(name.to_owned(), loaded.engine);
            threads.extend(loaded.thread);
            continue;
        }
        let lazy = lazy_engine(config, &budget, engine, scheduler)?;
        handles.insert(name.to_owned(), Arc::new(lazy.clone()) as Arc<dyn Engine>);
        lazies.push(lazy);
    }
    for (name, settings) in config
        .backing_models
        .iter()
        .filter(|(_, m)| m.engine == EngineKind::OpenAi)
    {
        handles.insert(
            name.clone(),
            Arc::new(openai_engine(name, settings)?) as Arc<dyn Engine>,
        );
    }
    for name in catalog.backing_models() {
        let Some((path, fallback)) = script(name) else {
            continue;
        };
        let Some(path) = path else {
            bail!("[backing_models.{name}] engine = \"script\" needs script = \"PATH\" (a TOML rules file)");
        };
        let fallback = fallback
            .map(|f| {
                handles.get(f).cloned().with_context(|| {
                    format!("[backing_models.{name}] fallback {f} is not a text model")
                })
            })
            .transpose()?;
        let engine =
            outcrop_script::ScriptEngine::load(name, path, fallback).map_err(anyhow::Error::msg)?;
        handles.insert(name.to_owned(), Arc::new(engine) as Arc<dyn Engine>);
    }
    Ok(Engines {
        handles,
        embedders,
        threads,
        lazies,
        budget,
        share,
    })
}

/// A local GGUF's engine and scheduler settings: its own `[backing_models.X.engine]` over
/// `[engine]`, and `share` threads unless configured.
fn settings(
    config: &Config,
    name: &str,
    path: PathBuf,
    share: u32,
) -> (EngineConfig, SchedulerConfig) {
    let own = config
        .backing_models
        .get(name)
        .map(|m| m.settings.clone())
        .unwrap_or_default();
    let e = &config.engine;
    let engine = EngineConfig {
        name: name.to_owned(),
        model_path: path,
        context_tokens: own.context_tokens.or(e.context_tokens),
        sequences: own.parallel.unwrap_or(e.parallel),
        kv_tokens: own.kv_tokens.or(e.kv_tokens),
        kv_unified: own.kv_unified.unwrap_or(e.kv_unified),
        threads: Some(own.threads.or(e.threads).unwrap_or(share)),
        batch_tokens: own.batch_tokens.unwrap_or(e.batch_tokens),
        gpu_layers: e.gpu_layers,
    };
    let scheduler = SchedulerConfig {
        queue_len: own.queue_len.unwrap_or(e.queue_len),
        step_tokens: engine.batch_tokens as usize,
        prompts_per_step: own.prompts_per_step.unwrap_or(e.prompts_per_step),
        prefix_entries: e.prefix_cache,
        prefix_min_tokens: e.prefix_min_tokens,
        reuse_unmarked: e.prefix_reuse == crate::config::PrefixReuse::Always,
    };
    (engine, scheduler)
}

/// An engine that loads on its first request, under the memory budget; refused when the
/// model alone cannot fit.
fn lazy_engine(
    config: &Config,
    budget: &Arc<Budget>,
    engine: EngineConfig,
    scheduler: SchedulerConfig,
) -> anyhow::Result<LazyEngine> {
    let name = engine.name.clone();
    let estimate = memory_estimate(&engine)?;
    if let Some(limit) = budget.limit().filter(|l| estimate > *l) {
        bail!(
            "model {name} needs about {} MiB (weights and KV cache) and [engine] memory_budget is {} MiB: raise the budget, or lower its context_tokens or kv_tokens",
            estimate >> 20,
            limit >> 20
        );
    }
    let lazy = LazyEngine::new(
        &name,
        estimate,
        std::time::Duration::from_secs(config.engine.load_wait_secs),
        budget.clone(),
        Box::new(move || Box::pin(load(engine.clone(), scheduler.clone()))),
    );
    tracing::info!(
        model = name,
        memory_mib = estimate >> 20,
        "model loads on its first request"
    );
    Ok(lazy)
}

/// An imported model's engine: `[engine]` settings, loaded on its first request.
pub fn imported_engine(
    config: &Config,
    budget: &Arc<Budget>,
    share: u32,
    name: &str,
    path: &std::path::Path,
) -> anyhow::Result<LazyEngine> {
    let (engine, scheduler) = settings(config, name, path.to_owned(), share);
    lazy_engine(config, budget, engine, scheduler)
}

/// Loads a GGUF on a new engine thread and returns once it serves.
async fn load(engine: EngineConfig, scheduler: SchedulerConfig) -> anyhow::Result<Loaded> {
    let name = engine.name.clone();
    let (handle, queue) = outcrop_scheduler::channel(&scheduler);
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("engine-{name}"))
        .spawn(move || {
            if let Err(e) = run_engine(&engine, |exec| queue.run(exec)) {
                let _ = failed_tx.send(e);
            }
        })
        .context("spawning an engine thread")?;
    tokio::select! {
        ready = handle.wait_ready() => { ready.with_context(|| format!("engine {name} stopped while starting"))?; }
        Ok(e) = failed_rx => return Err(e).with_context(|| format!("starting engine {name}")),
    }
    Ok(Loaded {
        engine: Arc::new(handle),
        thread: Some(thread),
    })
}

/// Weights plus the KV cache the engine will allocate, from the GGUF's metadata (the file's
/// size when its metadata says too little).
fn memory_estimate(engine: &EngineConfig) -> anyhow::Result<u64> {
    let file = std::fs::File::open(&engine.model_path)
        .with_context(|| format!("opening {}", engine.model_path.display()))?;
    let size = file.metadata()?.len();
    let d = outcrop_models::describe(std::io::BufReader::new(file)).unwrap_or_default();
    let per_sequence = u64::from(engine.context_tokens.or(d.context).unwrap_or(4096).max(16));
    let cells = if engine.kv_unified {
        u64::from(engine.kv_tokens.unwrap_or(0)).max(per_sequence)
    } else {
        per_sequence * u64::from(engine.sequences.max(1))
    };
    Ok(size + cells * d.kv_bytes_per_token.unwrap_or(0))
}

/// An OpenAI-compatible server as a backing model.
fn openai_engine(
    name: &str,
    m: &crate::config::BackingModel,
) -> anyhow::Result<outcrop_remote::OpenAiEngine> {
    let mut endpoints = m.urls.clone();
    endpoints.extend(m.url.clone());
    if endpoints.is_empty() {
        bail!("[backing_models.{name}] engine = \"openai\" needs url = \"http://HOST:PORT/v1\" (or urls)");
    }
    let Some(model) = m.model.clone() else {
        bail!("[backing_models.{name}] engine = \"openai\" needs model = \"NAME\" (the model the server serves)");
    };
    let api_key = match &m.api_key_env {
        Some(var) => Some(std::env::var(var).with_context(|| {
            format!(
                "[backing_models.{name}] api_key_env: the environment variable {var} is not set"
            )
        })?),
        None => None,
    };
    tracing::info!(model = name, endpoints = ?endpoints, served = %model, "remote engine (OpenAI-compatible)");
    outcrop_remote::OpenAiEngine::new(outcrop_remote::OpenAiConfig {
        name: name.to_owned(),
        endpoints,
        model,
        api_key,
        connect_timeout: std::time::Duration::from_secs(10),
        timeout: std::time::Duration::from_secs(m.timeout_secs.unwrap_or(600)),
        max_in_flight: m.max_in_flight.unwrap_or(64),
        eject_after: m.eject_after.unwrap_or(3),
        health_interval: match m.health_interval_secs.unwrap_or(5.0) {
            s if s > 0.0 => Some(std::time::Duration::from_secs_f64(s)),
            _ => None,
        },
        prefix_affinity: m.prefix_affinity,
        native_tools: m.native_tools,
        context_tokens: m.context_tokens.unwrap_or(32768),
    })
    .map_err(anyhow::Error::msg)
}

/// The file to load for a GGUF on a CPU: a Q4_1 model re-encoded as Q8_0 in the cache's
/// `derived/` ([`outcrop_models::q8_0_weights`]), else `path`. A failure (a read-only cache,
/// a file the converter does not understand) only costs speed: the stored file is loaded.
async fn cpu_weights(config: &Config, name: &str, path: PathBuf) -> PathBuf {
    let Ok(dir) = config.models_dir().map(|d| d.join("derived")) else {
        return path;
    };
    let (model, owned) = (path.clone(), name.to_owned());
    let made =
        tokio::task::spawn_blocking(move || outcrop_models::q8_0_weights(&model, &dir, &owned))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    made.unwrap_or_else(|e| {
        tracing::warn!(model = name, error = %e, "could not re-encode Q4_1 weights as Q8_0; loading the stored file");
        path
    })
}

/// A backing model's GGUF file or embedding-model directory: configured, or in the model
/// cache (pulled if missing).
async fn model_path(config: &Config, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = config.backing_models.get(name).and_then(|m| m.path.clone()) {
        return Ok(path);
    }
    let models_dir = config.models_dir()?;
    let source = outcrop_models::source(name);
    let present = |s: &outcrop_models::ModelSource| {
        s.files
            .iter()
            .all(|f| s.file_path(&models_dir, f).is_file())
    };
    match source {
        Some(s) if present(s) => return Ok(s.path(&models_dir)),
        None => {
            let path = outcrop_models::model_file(&models_dir, name);
            if path.is_file() {
                return Ok(path);
            }
        }
        Some(_) => {}
    }
    let Some(source) = source else {
        bail!("backing model {name} has no file: set [backing_models.{name}] path in the config");
    };
    if !config.pull_missing_models {
        bail!(
            "model {name} is missing from {}: run `outcrop models pull {name}`",
            models_dir.display()
        );
    }
    tracing::info!(model = name, "model missing; pulling it (once)");
    let pulled =
        tokio::task::spawn_blocking(move || outcrop_models::pull(source, &models_dir, true))
            .await??;
    Ok(pulled)
}
