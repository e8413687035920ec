use crate::batch::Batcher;
use crate::Executor;
use outcrop_engine::{Engine, EngineGauges, GenerationEvent, GenerationStream, SubmitError};
use outcrop_types::{GenerationError, GenerationRequest, ModelInfo, ServiceTier};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Limits of one scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Requests that may wait for a free sequence slot; one more is refused at once.
    pub queue_len: usize,
    /// Most tokens decoded in one step (generating sequences first, then prompt chunks).
    pub step_tokens: usize,
    /// Most sequences whose prompt is processed in one step. Prompts that arrive together
    /// are then finished one after another, so each gets its first token as soon as its own
    /// prompt is done instead of when all are (prefill cost on a CPU grows with the tokens
    /// whether or not they share a step). Raise it where batching prompts is nearly free (GPU).
    pub prompts_per_step: usize,
    /// Prompt prefixes kept in the KV cache for reuse (sequence ids past the slots); 0 turns
    /// prefix reuse off.
    pub prefix_entries: usize,
    /// Shared prefixes shorter than this are computed again rather than reused.
    pub prefix_min_tokens: u32,
    /// Reuse prefixes for prompts without cache checkpoints too (llama-server's
    /// `cache_prompt`). llama.cpp's CPU kernels do not compute a row the same way in every
    /// batch shape, so a prompt resumed from stored cells can get an answer at temperature 0
    /// that differs, late in the text, from the one computed whole; off, a prompt is only
    /// resumed where its request asked for caching.
    pub reuse_unmarked: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            queue_len: 64,
            step_tokens: 512,
            prompts_per_step: 1,
            prefix_entries: 32,
            prefix_min_tokens: 32,
            reuse_unmarked: false,
        }
    }
}

pub(crate) struct Job {
    pub request: GenerationRequest,
    pub events: mpsc::UnboundedSender<GenerationEvent>,
    /// The job's place in the queue's count, given back when it is admitted or dropped.
    pub queued: Option<QueuedSlot>,
}

/// One unit of [`Gauges::queued`], released on drop.
pub(crate) struct QueuedSlot(Arc<Gauges>);

impl Drop for QueuedSlot {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Most requests of a tier that may be waiting (all tiers counted) before one more of it is
/// refused: `flex` is refused once half the queue is taken, `default` when it is full, and
/// `priority` may go a quarter beyond that.
fn waiting_limit(queue_len: usize, tier: ServiceTier) -> usize {
    match tier {
        ServiceTier::Flex => queue_len.div_ceil(2),
        ServiceTier::Default => queue_len,
        ServiceTier::Priority => queue_len + queue_len.div_ceil(4),
    }
}

/// Counters the engine thread publishes.
#[derive(Debug, Default)]
pub(crate) struct Gauges {
    pub active: AtomicUsize,
    /// KV cells reserved by running sequences.
    pub reserved_kv: AtomicUsize,
    /// Requests submitted and not yet admitted (nor dropped).
    pub queued: AtomicUsize,
    /// Set by [`SchedulerHandle::abort_all`]: end all work, admit nothing more.
    pub aborting: AtomicBool,
    /// KV cells and entries the prefix store holds.
    pub cached_kv: AtomicUsize,
    pub prefix_entries: AtomicUsize,
    /// Admissions that reused a stored prefix, and that found none.
    pub prefix_hits: AtomicU64,
    pub prefix_misses: AtomicU64,
    pub prefix_evictions: AtomicU64,
    /// Prompt tokens not computed thanks to a stored prefix.
    pub reused_tokens: AtomicU64,
}

/// The async side of a scheduler: cheap to clone, used by request handlers.
#[derive(Clone)]
pub struct SchedulerHandle {
    jobs: mpsc::UnboundedSender<Job>,
    ready: watch::Receiver<Option<ModelInfo>>,
    gauges: Arc<Gauges>,
    queue_len: usize,
}

/// The engine side: run on the engine's own thread with [`WorkQueue::run`].
pub struct WorkQueue {
    jobs: mpsc::UnboundedReceiver<Job>,
    ready: watch::Sender<Option<ModelInfo>>,
    gauges: Arc<Gauges>,
    config: SchedulerConfig,
}

/// Creates a connected handle and work queue.
pub fn channel(config: &SchedulerConfig) -> (SchedulerHandle, WorkQueue) {
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = watch::channel(None);
    let gauges = Arc::new(Gauges::default());
    (
        SchedulerHandle {
            jobs: jobs_tx,
            ready: ready_rx,
            gauges: gauges.clone(),
            queue_len: config.queue_len.max(1),
        },
        WorkQueue {
            jobs: jobs_rx,
            ready: ready_tx,
            gauges,
            config: config.clone(),
        },
    )
}

#[async_trait::async_trait]
impl Engine for SchedulerHandle {
    /// Queues a generation, or refuses at once when the queue is full for its tier.
    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, SubmitError> {
        if self.gauges.aborting.load(Ordering::Relaxed) {
            return Err(SubmitError::Stopped);
        }
        let limit = waiting_limit(self.queue_len, request.tier);
        let taken = self
            .gauges
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(SubmitError::QueueFull);
        }
        let slot = QueuedSlot(self.gauges.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        self.jobs
            .send(Job {
                request,
                events: tx,
                queued: Some(slot),
            })
            .map_err(|_| SubmitError::Stopped)?;
        Ok(rx)
    }

    fn model(&self) -> Option<ModelInfo> {
        self.ready.borrow().clone()
    }

    async fn wait_ready(&self) -> Option<ModelInfo> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|m| m.clone())
    }

    /// Gauges as of the last step; `waiting` counts requests submitted and not yet admitted.
    fn gauges(&self) -> EngineGauges {
        EngineGauges {
            active_sequences: self.gauges.active.load(Ordering::Relaxed),
            waiting: self.gauges.queued.load(Ordering::Relaxed),
            reserved_kv: self.gauges.reserved_kv.load(Ordering::Relaxed),
            cached_kv: self.gauges.cached_kv.load(Ordering::Relaxed),
            prefix_entries: self.gauges.prefix_entries.load(Ordering::Relaxed),
            prefix_hits: self.gauges.prefix_hits.load(Ordering::Relaxed),
            prefix_misses: self.gauges.prefix_misses.load(Ordering::Relaxed),
            prefix_evictions: self.gauges.prefix_evictions.load(Ordering::Relaxed),
            prefix_reused_tokens: self.gauges.reused_tokens.load(Ordering::Relaxed),
            ..Default::default()
        }
    }

    fn abort_all(&self) {
        // An idle engine has nothing to end; a busy one checks the flag every step, and
        // anything it receives afterwards.
        self.gauges.aborting.store(true, Ordering::Relaxed);
    }
}

impl WorkQueue {
    /// Serves generations with `exec` until every handle is dropped and the work is done.
    /// Blocks the thread.
    pub fn run<E: Executor>(mut self, exec: &mut E) {
        let info = exec.info();
        let _ = self.ready.send(Some(info.clone()));
        let mut batcher = Batcher::new(
            &info,
            &self.config,
            exec.shared_sequences(),
            self.gauges.clone(),
        );
        let mut open = true;
        loop {
            if batcher.is_idle() {
                match self.jobs.blocking_recv() {
                    Some(job) => batcher.enqueue(job),
                    None => break,
                }
            }
            // Everything submitted is taken in, so that the batcher orders it by tier; the
            // queue's bound is kept by the count at submission.
            while open {
                match self.jobs.try_recv() {
                    Ok(job) => batcher.enqueue(job),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                }
            }
            if self.gauges.aborting.load(Ordering::Relaxed) {
                batcher.abort_all(exec);
                while let Ok(job) = self.jobs.try_recv() {
                    let _ = job
                        .events
                        .send(GenerationEvent::Failed(GenerationError::ShuttingDown));
                }
            }
            batcher.step(exec);
            if !open && batcher.is_idle() {
                break;
            }
        }
        let _ = self.ready.send(None);
    }
}

#[cfg(test)]
mod prefix_tests;
#[cfg(test)]
mod tests;
