//! Local models loaded on first use, kept while used, and unloaded least recently used first
//! when another must fit under `[engine] memory_budget`.
//!
//! A [`LazyEngine`] stands for one backing model from the start, so the server listens at
//! once whatever the number of models. The first request starts the load; requests that
//! arrive meanwhile wait up to `load_wait`, then get Bedrock's ModelNotReadyException (which
//! the AWS SDKs retry on their own). A model that could not load, or whose engine stopped (its
//! thread ended), reports `failed`; it is loaded again by a request after a backoff that
//! doubles with each failure in a row (1 s to 60 s), and until then requests are refused at
//! once.

use futures_util::future::BoxFuture;
use outcrop_engine::{
    Engine, EngineGauges, GenerationEvent, GenerationStream, LoadState, SubmitError,
};
use outcrop_types::{FaultKind, GenerationError, GenerationRequest, ModelInfo};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A loaded model: its engine and the thread that runs it (ended by dropping the engine).
pub struct Loaded {
    pub engine: Arc<dyn Engine>,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

/// Loads the model (on the engine thread) and returns once it serves.
pub type Loader = Box<dyn Fn() -> BoxFuture<'static, anyhow::Result<Loaded>> + Send + Sync>;

enum Slot {
    Unloaded,
    Loading,
    Ready(Arc<dyn Engine>, Option<std::thread::JoinHandle<()>>),
    /// Why, and when a request may try again.
    Failed(String, Instant),
}

/// The wait before loading again after `failures` failures in a row.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// The memory the lazily loaded models share.
pub struct Budget {
    limit: Option<u64>,
    members: Mutex<Vec<Weak<Inner>>>,
}

impl Budget {
    pub fn new(limit: Option<u64>) -> Arc<Self> {
        Arc::new(Budget {
            limit,
            members: Mutex::new(Vec::new()),
        })
    }

    /// The budget in bytes; `None`: unlimited.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Unloads idle models, least recently used first, until `model` fits; waits (up to the
    /// model's load wait) for models in use to become idle, then gives up with the reason.
    async fn make_room(&self, model: &Inner) -> Result<(), String> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        if model.estimate > limit {
            return Err(format!(
                "{} needs {} MiB, more than the whole memory budget ({} MiB)",
                model.name,
                model.estimate >> 20,
                limit >> 20
            ));
        }
        let deadline = Instant::now() + model.load_wait;
        loop {
            let members: Vec<Arc<Inner>> = lock(&self.members)
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|m| !std::ptr::eq(m.as_ref(), model))
                .collect();
            let used: u64 = members
                .iter()
                .filter(|m| m.holds_memory())
                .map(|m| m.estimate)
                .sum();
            if used + model.estimate <= limit {
                return Ok(());
            }
            let victim = members
                .iter()
                .filter(|m| m.idle())
                .min_by_key(|m| *lock(&m.last_used));
            let Some(victim) = victim else {
                if Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                return Err(format!(
                    "{} needs {} MiB and the memory budget ({} MiB) is held by models in use; try again when they are idle",
                    model.name,
                    model.estimate >> 20,
                    limit >> 20
                ));
            };
            tracing::info!(model = %victim.name, to_load = %model.name, "unloading the least recently used model to make room");
            victim.unload().await;
        }
    }
}

pub struct Inner {
    name: String,
    /// Weights plus KV cache, estimated from the GGUF before loading.
    estimate: u64,
    load_wait: Duration,
    load: Loader,
    slot: Mutex<Slot>,
    changed: watch::Sender<()>,
    /// Requests waiting for the load, or forwarded to the loaded engine.
    in_flight: AtomicUsize,
    last_used: Mutex<Instant>,
    aborted: AtomicBool,
    budget: Arc<Budget>,
    /// Loads that failed, or engines that stopped, in a row.
    failures: AtomicU32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn holds_memory(&self) -> bool {
        matches!(*lock(&self.slot), Slot::Loading | Slot::Ready(..))
    }

    fn idle(&self) -> bool {
        match &*lock(&self.slot) {
            Slot::Ready(engine, _) => {
                let g = engine.gauges();
                g.active_sequences == 0
                    && g.waiting == 0
                    && self.in_flight.load(Ordering::SeqCst) == 0
            }
            _ => false,
        }
    }

    /// The engine, when it is loaded and still running.
    fn running(&self) -> Option<Arc<dyn Engine>> {
        match &*lock(&self.slot) {
            Slot::Ready(engine, _) if engine.model().is_some() => Some(engine.clone()),
            _ => None,
        }
    }

    async fn unload(&self) {
        let taken = std::mem::replace(&mut *lock(&self.slot), Slot::Unloaded);
        self.changed.send_replace(());
        if let Slot::Ready(engine, thread) = taken {
            drop(engine);
            if let Some(thread) = thread {
                // The model's memory is free once its thread has ended.
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
        }
    }

    /// Starts loading unless the model is loaded or loading.
    fn ensure_loading(self: &Arc<Self>) {
        {
            let mut slot = lock(&self.slot);
            match &*slot {
                Slot::Loading => return,
                Slot::Ready(engine, _) if engine.model().is_some() => return,
                Slot::Failed(_, retry_at) if Instant::now() < *retry_at => return,
                _ if self.aborted.load(Ordering::SeqCst) => return,
                Slot::Ready(..) => {
                    // Its engine stopped: a failure like a failed load, waited out the same way.
                    let failures = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
                    let wait = backoff(failures);
                    tracing::error!(model = %self.name, failures, retry_secs = wait.as_secs(), "the model's engine stopped; it loads again after a pause");
                    *slot = Slot::Failed("its engine stopped".into(), Instant::now() + wait);
                    drop(slot);
                    self.changed.send_replace(());
                    return;
                }
                _ => *slot = Slot::Loading,
            }
        }
        self.changed.send_replace(());
        let inner = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = match inner.budget.make_room(&inner).await {
                Ok(()) => (inner.load)().await.map_err(|e| format!("{e:#}")),
                Err(e) => Err(e),
            };
            let next = match result {
                Ok(loaded) => {
                    tracing::info!(model = %inner.name, seconds = started.elapsed().as_secs_f64(), "model loaded on demand");
                    inner.failures.store(0, Ordering::SeqCst);
                    Slot::Ready(loaded.engine, loaded.thread)
                }
                Err(e) => {
                    let failures = inner.failures.fetch_add(1, Ordering::SeqCst) + 1;
                    let wait = backoff(failures);
                    tracing::error!(model = %inner.name, error = %e, failures, retry_secs = wait.as_secs(), "model could not be loaded");
                    Slot::Failed(e, Instant::now() + wait)
                }
            };
            *lock(&inner.slot) = next;
            inner.changed.send_replace(());
        });
    }

    /// Waits for the load to end: the engine, or why it failed.
    async fn ready(self: &Arc<Self>) -> Result<Arc<dyn Engine>, String> {
        let mut changes = self.changed.subscribe();
        loop {
            match &*lock(&self.slot) {
                Slot::Ready(engine, _) => return Ok(engine.clone()),
                Slot::Failed(e, _) => return Err(e.clone()),
                Slot::Unloaded | Slot::Loading => {}
            }
            if changes.changed().await.is_err() {
                return Err("the server is stopping".into());
            }
        }
    }
}

/// One backing model, loaded when first used.
#[derive(Clone)]
pub struct LazyEngine(Arc<Inner>);

impl LazyEngine {
    pub fn new(
        name: &str,
        estimate: u64,
        load_wait: Duration,
        budget: Arc<Budget>,
        load: Loader,
    ) -> Self {
        let inner = Arc::new(Inner {
            name: name.to_owned(),
            estimate,
            load_wait,
            load,
            slot: Mutex::new(Slot::Unloaded),
            changed: watch::channel(()).0,
            in_flight: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
            aborted: AtomicBool::new(false),
            budget: budget.clone(),
            failures: AtomicU32::new(0),
        });
        lock(&budget.members).push(Arc::downgrade(&inner));
        LazyEngine(inner)
    }

    /// Ends the engine thread, if the model is loaded (at shutdown).
    pub async fn stop(&self) {
        self.0.aborted.store(true, Ordering::SeqCst);
        self.0.unload().await;
    }
}

/// Counts a request in flight until it ends.
struct InFlight(Arc<Inner>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn fault(kind: FaultKind, message: String) -> GenerationError {
    GenerationError::Fault { kind, message }
}

#[async_trait::async_trait]
impl Engine for LazyEngine {
    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, SubmitError> {
        let inner = &self.0;
        if inner.aborted.load(Ordering::SeqCst) {
            return Err(SubmitError::Stopped);
        }
        *lock(&inner.last_used) = Instant::now();
        if let Some(engine) = inner.running() {
            return engine.submit(request);
        }
        inner.ensure_loading();
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(inner.clone());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let inner = guard.0.clone();
            let engine = match tokio::time::timeout(inner.load_wait, inner.ready()).await {
                Ok(Ok(engine)) => engine,
                Ok(Err(why)) => {
                    // The reason (paths, the budget) is for the operator: logged, not sent.
                    tracing::warn!(model = %inner.name, reason = %why, "request refused: the model could not be loaded");
                    let _ = tx.send(GenerationEvent::Failed(fault(
                        FaultKind::ServiceUnavailable,
                        "The model could not be loaded. Try again later.".into(),
                    )));
                    return;
                }
                Err(_) => {
                    let _ = tx.send(GenerationEvent::Failed(fault(
                        FaultKind::ModelNotReady,
                        "The model is loading. Try your request again.".into(),
                    )));
                    return;
                }
            };
            let mut events = match engine.submit(request) {
                Ok(events) => events,
                Err(e) => {
                    let kind = match e {
                        SubmitError::QueueFull => FaultKind::Throttling,
                        SubmitError::Stopped => FaultKind::ServiceUnavailable,
                    };
                    let _ = tx.send(GenerationEvent::Failed(fault(kind, e.to_string())));
                    return;
                }
            };
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Some(event) => if tx.send(event).is_err() { return },
                        None => return,
                    },
                    // The client left: dropping `events` cancels the generation.
                    () = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }

    fn model(&self) -> Option<ModelInfo> {
        self.0.running().and_then(|e| e.model())
    }

    async fn wait_ready(&self) -> Option<ModelInfo> {
        self.0.ensure_loading();
        self.0.ready().await.ok().and_then(|e| e.model())
    }

    fn gauges(&self) -> EngineGauges {
        match self.0.running() {
            Some(engine) => engine.gauges(),
            // Requests waiting for the load.
            None => EngineGauges {
                waiting: self.0.in_flight.load(Ordering::SeqCst),
                ..Default::default()
            },
        }
    }

    fn abort_all(&self) {
        self.0.aborted.store(true, Ordering::SeqCst);
        if let Some(engine) = self.0.running() {
            engine.abort_all();
        }
    }

    fn load_state(&self) -> LoadState {
        match &*lock(&self.0.slot) {
            Slot::Unloaded => LoadState::Unloaded,
            Slot::Loading => LoadState::Loading,
            Slot::Ready(engine, _) if engine.model().is_some() => LoadState::Ready,
            Slot::Ready(..) | Slot::Failed(..) => LoadState::Failed,
        }
    }

    fn memory(&self) -> Option<u64> {
        self.0.holds_memory().then_some(self.0.estimate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outcrop_engine::{collect, FakeEngine};
    use outcrop_types::{Prompt, Role, Turn};

    fn request() -> GenerationRequest {
        GenerationRequest {
            prompt: Prompt::Chat(vec![Turn::new(Role::User, "hello there")]),
            max_tokens: 4,
            sampling: Default::default(),
            stop_sequences: Vec::new(),
            label: None,
            exclusive: false,
            tier: Default::default(),
            cache: Default::default(),
        }
    }

    /// A model whose load takes `delay` and counts how often it was loaded.
    fn lazy(
        name: &str,
        estimate: u64,
        delay: Duration,
        budget: &Arc<Budget>,
    ) -> (LazyEngine, Arc<AtomicUsize>) {
        let loads = Arc::new(AtomicUsize::new(0));
        let counter = loads.clone();
        let engine = LazyEngine::new(
            name,
            estimate,
            Duration::from_millis(300),
            budget.clone(),
            Box::new(move || {
                let counter = counter.clone();
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    counter.fetch_add(1, Ordering::SeqCst);
                    Ok(Loaded {
                        engine: Arc::new(FakeEngine::replying("fake", "one two"))
                            as Arc<dyn Engine>,
                        thread: None,
                    })
                })
            }),
        );
        (engine, loads)
    }

    #[tokio::test]
    async fn the_first_request_loads_the_model_and_later_ones_use_it() {
        let budget = Budget::new(None);
        let (engine, loads) = lazy("m", 1, Duration::from_millis(20), &budget);
        assert_eq!(engine.load_state(), LoadState::Unloaded);
        let (a, b) = tokio::join!(
            collect(engine.submit(request()).unwrap()),
            collect(engine.submit(request()).unwrap())
        );
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(engine.load_state(), LoadState::Ready);
        collect(engine.submit(request()).unwrap()).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_slow_load_answers_model_not_ready() {
        let budget = Budget::new(None);
        let (engine, _) = lazy("slow", 1, Duration::from_secs(2), &budget);
        let err = collect(engine.submit(request()).unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("loading"), "{err}");
        assert_eq!(engine.load_state(), LoadState::Loading);
    }

    #[tokio::test]
    async fn the_least_recently_used_idle_model_makes_room() {
        let budget = Budget::new(Some(10));
        let (a, _) = lazy("a", 6, Duration::ZERO, &budget);
        let (b, _) = lazy("b", 6, Duration::ZERO, &budget);
        collect(a.submit(request()).unwrap()).await.unwrap();
        assert_eq!(a.memory(), Some(6));
        collect(b.submit(request()).unwrap()).await.unwrap();
        assert_eq!(
            (a.load_state(), b.load_state()),
            (LoadState::Unloaded, LoadState::Ready)
        );
        assert_eq!(a.memory(), None);
        // Too big for the budget even alone: refused with the reason.
        let (big, _) = lazy("big", 11, Duration::ZERO, &budget);
        let err = collect(big.submit(request()).unwrap()).await.unwrap_err();
        assert!(err.to_string().contains("could not be loaded"), "{err}");
        assert_eq!(big.load_state(), LoadState::Failed);
        assert_eq!(b.load_state(), LoadState::Ready);
    }

    #[tokio::test]
    async fn a_stopped_engine_refuses() {
        let budget = Budget::new(None);
        let (engine, _) = lazy("m", 1, Duration::ZERO, &budget);
        collect(engine.submit(request()).unwrap()).await.unwrap();
        engine.stop().await;
        assert!(engine.submit(request()).is_err());
        assert_eq!(engine.load_state(), LoadState::Unloaded);
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;
    use outcrop_engine::collect;
    use outcrop_types::{Prompt, Role, Turn};

    #[test]
    fn the_wait_doubles_up_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[tokio::test]
    async fn a_model_that_cannot_load_is_not_loaded_again_until_its_backoff_has_passed() {
        let loads = Arc::new(AtomicUsize::new(0));
        let counter = loads.clone();
        let engine = LazyEngine::new(
            "broken",
            1,
            Duration::from_millis(500),
            Budget::new(None),
            Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Err(anyhow::anyhow!("no such file")) })
            }),
        );
        let request = || GenerationRequest {
            prompt: Prompt::Chat(vec![Turn::new(Role::User, "hi")]),
            max_tokens: 2,
            sampling: Default::default(),
            stop_sequences: Vec::new(),
            label: None,
            exclusive: false,
            tier: Default::default(),
            cache: Default::default(),
        };
        for _ in 0..3 {
            let err = collect(engine.submit(request()).unwrap())
                .await
                .unwrap_err();
            assert!(err.to_string().contains("could not be loaded"), "{err}");
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "refused at once while backing off"
        );
        assert_eq!(engine.load_state(), LoadState::Failed);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let _ = collect(engine.submit(request()).unwrap()).await;
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "tried again after a second"
        );
    }
}
