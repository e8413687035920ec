//! A scripted engine with no model, for tests of the layers above the engine seam.
//!
//! Tokens are words: a prompt's size is its whitespace-separated words plus one per chat turn
//! (for the template's role markers); an answer is given out one word (with its following
//! space) per token. That is enough to check counts, limits, stop sequences and streams
//! without a model file.

use crate::{Engine, EngineGauges, GenerationEvent, GenerationStream, SubmitError};
use async_trait::async_trait;
use outcrop_types::{GenerationError, GenerationRequest, ModelInfo, Prompt, StopReason, Usage};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tokio::sync::mpsc;

/// How a [`FakeEngine`] answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// This text, one word per token, cut at `max_tokens` or before the first stop sequence.
    Text(String),
    /// Started, then this failure.
    Fail(GenerationError),
    /// Started, this text, then nothing until the caller drops the stream (a generation still
    /// running when its client goes away).
    Stall(String),
}

type Script = Box<dyn FnMut(&GenerationRequest) -> Reply + Send>;

/// A scripted [`Engine`]: answers every request through a closure, remembers what it was
/// asked, and can be told to refuse (a full queue, a stopped engine).
pub struct FakeEngine {
    info: ModelInfo,
    script: Mutex<Script>,
    refuse: Mutex<Option<SubmitError>>,
    requests: Mutex<Vec<GenerationRequest>>,
    /// Senders of stalled generations, kept so that their streams stay open.
    stalled: Mutex<Vec<mpsc::UnboundedSender<GenerationEvent>>>,
    aborted: AtomicBool,
}

impl FakeEngine {
    /// An engine that answers every request with `text`.
    pub fn replying(name: &str, text: &str) -> Self {
        let text = text.to_owned();
        Self::scripted(name, move |_| Reply::Text(text.clone()))
    }

    /// An engine that answers each request with what `script` says.
    pub fn scripted(
        name: &str,
        script: impl FnMut(&GenerationRequest) -> Reply + Send + 'static,
    ) -> Self {
        FakeEngine {
            info: ModelInfo {
                name: name.to_owned(),
                context_tokens: 2048,
                max_sequences: 4,
                kv_tokens: 8192,
            },
            script: Mutex::new(Box::new(script)),
            refuse: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            stalled: Mutex::new(Vec::new()),
            aborted: AtomicBool::new(false),
        }
    }

    /// A smaller or larger context window (prompts over it fail with `InputTooLong`).
    pub fn with_context(mut self, context_tokens: u32) -> Self {
        self.info.context_tokens = context_tokens;
        self
    }

    /// Refuse every submission with `error` from now on (`None`: accept again).
    pub fn refuse(&self, error: Option<SubmitError>) {
        *lock(&self.refuse) = error;
    }

    /// Every request accepted so far, in order.
    pub fn requests(&self) -> Vec<GenerationRequest> {
        lock(&self.requests).clone()
    }

    /// Stalled generations whose caller has dropped the stream.
    pub fn cancelled(&self) -> usize {
        lock(&self.stalled).iter().filter(|s| s.is_closed()).count()
    }

    /// A prompt's size in this engine's tokens (words, plus one per chat turn).
    pub fn prompt_tokens(prompt: &Prompt) -> u32 {
        let n = match prompt {
            Prompt::Raw(text) => words(text).count(),
            Prompt::Chat(turns) | Prompt::ChatWithTools { turns, .. } => {
                turns.iter().map(|t| words(&t.content).count() + 1).sum()
            }
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

#[async_trait]
impl Engine for FakeEngine {
    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, SubmitError> {
        if self.aborted.load(Ordering::Relaxed) {
            return Err(SubmitError::Stopped);
        }
        if let Some(e) = *lock(&self.refuse) {
            return Err(e);
        }
        let reply = (lock(&self.script))(&request);
        lock(&self.requests).push(request.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let input_tokens = Self::prompt_tokens(&request.prompt);
        if input_tokens >= self.info.context_tokens {
            let _ = tx.send(GenerationEvent::Failed(GenerationError::InputTooLong {
                prompt_tokens: input_tokens,
                context_tokens: self.info.context_tokens,
            }));
            return Ok(rx);
        }
        let _ = tx.send(GenerationEvent::Started { input_tokens });
        match reply {
            Reply::Text(text) => {
                let (pieces, reason) = answer(&text, &request);
                let output_tokens = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
                for piece in pieces {
                    let _ = tx.send(GenerationEvent::Text(piece));
                }
                let usage = Usage {
                    input_tokens,
                    output_tokens,
                    ..Default::default()
                };
                let _ = tx.send(GenerationEvent::Finished { reason, usage });
            }
            Reply::Fail(e) => {
                let _ = tx.send(GenerationEvent::Failed(e));
            }
            Reply::Stall(text) => {
                for piece in pieces(&text) {
                    let _ = tx.send(GenerationEvent::Text(piece));
                }
                lock(&self.stalled).push(tx);
            }
        }
        Ok(rx)
    }

    fn model(&self) -> Option<ModelInfo> {
        Some(self.info.clone())
    }

    async fn wait_ready(&self) -> Option<ModelInfo> {
        self.model()
    }

    fn gauges(&self) -> EngineGauges {
        let stalled = lock(&self.stalled);
        EngineGauges {
            active_sequences: stalled.iter().filter(|s| !s.is_closed()).count(),
            waiting: 0,
            reserved_kv: 0,
            ..Default::default()
        }
    }

    fn abort_all(&self) {
        self.aborted.store(true, Ordering::Relaxed);
        for tx in lock(&self.stalled).drain(..) {
            let _ = tx.send(GenerationEvent::Failed(GenerationError::ShuttingDown));
        }
    }
}

/// The pieces of `text` a request lets out, and why it ends: `max_tokens` words at most, cut
/// before the first stop sequence (which is never emitted), as the real scheduler does.
pub fn answer(text: &str, request: &GenerationRequest) -> (Vec<String>, StopReason) {
    let mut text = text;
    let mut reason = StopReason::EndOfTurn;
    let first_stop = request
        .stop_sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at);
    if let Some((at, stop)) = first_stop {
        text = &text[..at];
        reason = StopReason::StopSequence(stop.clone());
    }
    let mut pieces = pieces(text);
    if pieces.len() > request.max_tokens as usize {
        pieces.truncate(request.max_tokens as usize);
        reason = StopReason::MaxTokens;
    }
    (pieces, reason)
}

/// `text` cut after each run of white space: one piece per token.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for c in text.chars() {
        if in_space && !c.is_whitespace() {
            out.push(std::mem::take(&mut current));
        }
        in_space = c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn words(text: &str) -> std::str::SplitWhitespace<'_> {
    text.split_whitespace()
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect;
    use outcrop_types::{Role, Sampling, Turn};

    fn request(text: &str, max_tokens: u32, stops: &[&str]) -> GenerationRequest {
        GenerationRequest {
            prompt: Prompt::Chat(vec![Turn::new(Role::User, text)]),
            max_tokens,
            sampling: Sampling::greedy(),
            stop_sequences: stops.iter().map(|s| s.to_string()).collect(),
            label: None,
            exclusive: false,
            tier: Default::default(),
            cache: Default::default(),
        }
    }

    #[tokio::test]
    async fn answers_word_by_word_and_counts() {
        let engine = FakeEngine::replying("fake", "one two three");
        let got = collect(engine.submit(request("hi there", 10, &[])).unwrap())
            .await
            .unwrap();
        assert_eq!(got.text, "one two three");
        assert_eq!(got.reason, StopReason::EndOfTurn);
        assert_eq!(got.usage.input_tokens, 3);
        assert_eq!(got.usage.output_tokens, 3);
    }

    #[tokio::test]
    async fn max_tokens_and_stop_sequences_cut_the_answer() {
        let engine = FakeEngine::replying("fake", "one two three four");
        let cut = collect(engine.submit(request("x", 2, &[])).unwrap())
            .await
            .unwrap();
        assert_eq!(
            (cut.text.as_str(), cut.reason),
            ("one two ", StopReason::MaxTokens)
        );
        let stopped = collect(engine.submit(request("x", 9, &["three"])).unwrap())
            .await
            .unwrap();
        assert_eq!(stopped.text, "one two ");
        assert_eq!(stopped.reason, StopReason::StopSequence("three".into()));
    }

    #[tokio::test]
    async fn counts_tokens_of_prompts_too_long() {
        let engine = FakeEngine::replying("fake", "").with_context(3);
        let prompt = Prompt::Raw("a b c d e".into());
        assert_eq!(engine.count_tokens(prompt).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn refuses_and_stalls_as_told() {
        let engine = FakeEngine::scripted("fake", |_| Reply::Stall("partial ".into()));
        engine.refuse(Some(SubmitError::QueueFull));
        assert_eq!(
            engine.submit(request("x", 5, &[])).unwrap_err(),
            SubmitError::QueueFull
        );
        engine.refuse(None);
        let mut stream = engine.submit(request("x", 5, &[])).unwrap();
        assert!(matches!(
            stream.recv().await,
            Some(GenerationEvent::Started { .. })
        ));
        assert_eq!(engine.gauges().active_sequences, 1);
        drop(stream);
        assert_eq!(engine.cancelled(), 1);
        engine.abort_all();
        assert_eq!(
            engine.submit(request("x", 5, &[])).unwrap_err(),
            SubmitError::Stopped
        );
    }
}
