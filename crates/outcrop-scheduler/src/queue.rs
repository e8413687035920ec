use crate::{EngineStop, Executor, Flow, StopMatcher, Utf8Assembler};
use outcrop_types::{GenerationError, GenerationRequest, ModelInfo, StopReason, Usage};
use tokio::sync::{mpsc, watch};

/// Limits of one scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Requests that may wait for the engine; one more is refused at once.
    pub queue_len: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig { queue_len: 64 }
    }
}

/// What a generation reports, in order: `Started`, any number of `Text`, then `Finished`;
/// or `Failed` at any point, after which nothing follows.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// The prompt was accepted; its size in the backing model's tokens.
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

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the request queue is full")]
    QueueFull,
    #[error("the engine has stopped")]
    Stopped,
}

struct Job {
    request: GenerationRequest,
    events: mpsc::UnboundedSender<GenerationEvent>,
}

/// The async side of a scheduler: cheap to clone, used by request handlers.
#[derive(Clone)]
pub struct SchedulerHandle {
    jobs: mpsc::Sender<Job>,
    ready: watch::Receiver<Option<ModelInfo>>,
}

/// The engine side: run on the engine's own thread with [`WorkQueue::run`].
pub struct WorkQueue {
    jobs: mpsc::Receiver<Job>,
    ready: watch::Sender<Option<ModelInfo>>,
}

/// Creates a connected handle and work queue.
pub fn channel(config: &SchedulerConfig) -> (SchedulerHandle, WorkQueue) {
    let (jobs_tx, jobs_rx) = mpsc::channel(config.queue_len.max(1));
    let (ready_tx, ready_rx) = watch::channel(None);
    (
        SchedulerHandle {
            jobs: jobs_tx,
            ready: ready_rx,
        },
        WorkQueue {
            jobs: jobs_rx,
            ready: ready_tx,
        },
    )
}

impl SchedulerHandle {
    /// Queues a generation, or refuses at once when the queue is full.
    pub fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, SubmitError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.jobs
            .try_send(Job {
                request,
                events: tx,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
            })?;
        Ok(rx)
    }

    /// The loaded model, once the engine is running.
    pub fn model(&self) -> Option<ModelInfo> {
        self.ready.borrow().clone()
    }

    /// Waits until the engine runs (or has stopped for good: then `None`).
    pub async fn wait_ready(&self) -> Option<ModelInfo> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|m| m.clone())
    }
}

impl WorkQueue {
    /// Serves queued generations with `exec` until every handle is dropped. Blocks the thread.
    pub fn run<E: Executor>(mut self, exec: &mut E) {
        let _ = self.ready.send(Some(exec.info()));
        while let Some(job) = self.jobs.blocking_recv() {
            if job.events.is_closed() {
                continue; // the client left while queued
            }
            let event = match run_job(exec, &job) {
                Ok((reason, usage)) => GenerationEvent::Finished { reason, usage },
                Err(e) => GenerationEvent::Failed(e),
            };
            let _ = job.events.send(event);
        }
        let _ = self.ready.send(None);
    }
}

fn run_job<E: Executor>(exec: &mut E, job: &Job) -> Result<(StopReason, Usage), GenerationError> {
    let req = &job.request;
    let prompt = exec.tokenize_prompt(&req.prompt)?;
    let context = exec.info().context_tokens;
    let input_tokens = u32::try_from(prompt.len()).unwrap_or(u32::MAX);
    // The prompt plus at least one generated token must fit the context window.
    if input_tokens >= context {
        return Err(GenerationError::InputTooLong {
            prompt_tokens: input_tokens,
            context_tokens: context,
        });
    }
    let mut usage = Usage {
        input_tokens,
        output_tokens: 0,
    };
    if job
        .events
        .send(GenerationEvent::Started { input_tokens })
        .is_err()
    {
        return Ok((StopReason::MaxTokens, usage));
    }
    if req.max_tokens == 0 {
        return Ok((StopReason::MaxTokens, usage));
    }
    let mut utf8 = Utf8Assembler::default();
    let mut stops = StopMatcher::new(&req.stop_sequences);
    let mut matched: Option<String> = None;
    let mut emit = |bytes: &[u8]| {
        let text = utf8.push(bytes);
        if text.is_empty() {
            return Flow::Continue;
        }
        let m = stops.push(&text);
        if !m.emit.is_empty() && job.events.send(GenerationEvent::Text(m.emit)).is_err() {
            return Flow::Stop; // client disconnected: cancel
        }
        if m.stop.is_some() {
            matched = m.stop;
            return Flow::Stop;
        }
        Flow::Continue
    };
    let outcome = exec.generate(&prompt, &req.sampling, req.max_tokens, &mut emit)?;
    usage.output_tokens = outcome.generated_tokens;
    if let Some(stop) = matched {
        return Ok((StopReason::StopSequence(stop), usage));
    }
    let rest = stops.push(&utf8.finish()).emit + &stops.finish();
    if !rest.is_empty() {
        let _ = job.events.send(GenerationEvent::Text(rest));
    }
    let reason = match outcome.stop {
        EngineStop::EndOfTurn => StopReason::EndOfTurn,
        EngineStop::Limit | EngineStop::Stopped => StopReason::MaxTokens,
    };
    Ok((reason, usage))
}

#[cfg(test)]
mod tests;
