//! Scheduler behaviour against a fake executor: no model needed.
use super::*;
use crate::EngineOutcome;
use outcrop_types::{Prompt, Sampling};
use std::sync::{Arc, Mutex};

/// Emits a fixed script of pieces, then ends the turn; records how many tokens it produced.
struct FakeExecutor {
    pieces: Vec<&'static [u8]>,
    context: u32,
    produced: Arc<Mutex<Vec<u32>>>,
}

impl Executor for FakeExecutor {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: "fake".into(),
            context_tokens: self.context,
        }
    }

    fn tokenize_prompt(&mut self, prompt: &Prompt) -> Result<Vec<u32>, GenerationError> {
        match prompt {
            Prompt::Raw(s) => Ok(s.split_whitespace().map(|_| 1).collect()),
            Prompt::Chat(turns) => Ok(vec![1; turns.len()]),
        }
    }

    fn generate(
        &mut self,
        _prompt: &[u32],
        _sampling: &Sampling,
        max_tokens: u32,
        emit: &mut dyn FnMut(&[u8]) -> Flow,
    ) -> Result<EngineOutcome, GenerationError> {
        let mut n = 0;
        for piece in &self.pieces {
            if n == max_tokens {
                self.produced.lock().unwrap().push(n);
                return Ok(EngineOutcome {
                    stop: EngineStop::Limit,
                    generated_tokens: n,
                });
            }
            n += 1;
            // Slow enough that a test can act while tokens are still being generated.
            std::thread::sleep(std::time::Duration::from_micros(200));
            if emit(piece) == Flow::Stop {
                self.produced.lock().unwrap().push(n);
                return Ok(EngineOutcome {
                    stop: EngineStop::Stopped,
                    generated_tokens: n,
                });
            }
        }
        self.produced.lock().unwrap().push(n);
        Ok(EngineOutcome {
            stop: EngineStop::EndOfTurn,
            generated_tokens: n,
        })
    }
}

fn request(prompt: &str, max_tokens: u32, stops: &[&str]) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Raw(prompt.into()),
        max_tokens,
        sampling: Sampling::greedy(),
        stop_sequences: stops.iter().map(|s| s.to_string()).collect(),
    }
}

fn start(
    pieces: Vec<&'static [u8]>,
    context: u32,
    queue_len: usize,
) -> (
    SchedulerHandle,
    Arc<Mutex<Vec<u32>>>,
    std::thread::JoinHandle<()>,
) {
    let (handle, queue) = channel(&SchedulerConfig { queue_len });
    let produced = Arc::new(Mutex::new(Vec::new()));
    let mut exec = FakeExecutor {
        pieces,
        context,
        produced: produced.clone(),
    };
    let thread = std::thread::spawn(move || queue.run(&mut exec));
    (handle, produced, thread)
}

async fn collect(mut rx: GenerationStream) -> Vec<GenerationEvent> {
    let mut out = Vec::new();
    while let Some(e) = rx.recv().await {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn generation_reports_start_text_and_end() {
    let (h, _, _) = start(vec![b"Hel", b"lo", b" there"], 100, 4);
    let events = collect(h.submit(request("a b c", 10, &[])).unwrap()).await;
    let text: String = events
        .iter()
        .filter_map(|e| {
            if let GenerationEvent::Text(t) = e {
                Some(t.as_str())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(events[0], GenerationEvent::Started { input_tokens: 3 });
    assert_eq!(text, "Hello there");
    assert_eq!(
        events.last().unwrap(),
        &GenerationEvent::Finished {
            reason: StopReason::EndOfTurn,
            usage: Usage {
                input_tokens: 3,
                output_tokens: 3
            }
        }
    );
}

#[tokio::test]
async fn stop_sequence_ends_generation_and_is_not_emitted() {
    let (h, produced, _) = start(
        vec![b"Sure", b".\n", b"\nHu", b"man:", b" more", b" text"],
        100,
        4,
    );
    let events = collect(h.submit(request("x", 10, &["\n\nHuman:"])).unwrap()).await;
    let text: String = events
        .iter()
        .filter_map(|e| {
            if let GenerationEvent::Text(t) = e {
                Some(t.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(text, "Sure.");
    assert_eq!(
        events.last().unwrap(),
        &GenerationEvent::Finished {
            reason: StopReason::StopSequence("\n\nHuman:".into()),
            usage: Usage {
                input_tokens: 1,
                output_tokens: 4
            }
        }
    );
    assert_eq!(
        *produced.lock().unwrap(),
        vec![4],
        "the engine stopped at the matching token"
    );
}

#[tokio::test]
async fn max_tokens_limits_output() {
    let (h, _, _) = start(vec![b"a", b"b", b"c"], 100, 4);
    let events = collect(h.submit(request("x", 2, &[])).unwrap()).await;
    assert_eq!(
        events.last().unwrap(),
        &GenerationEvent::Finished {
            reason: StopReason::MaxTokens,
            usage: Usage {
                input_tokens: 1,
                output_tokens: 2
            }
        }
    );
    let events = collect(h.submit(request("x", 0, &[])).unwrap()).await;
    assert_eq!(events.len(), 2, "{events:?}");
}

#[tokio::test]
async fn prompt_that_fills_the_context_is_refused() {
    let (h, produced, _) = start(vec![b"a"], 4, 4);
    let events = collect(h.submit(request("a b c d", 10, &[])).unwrap()).await;
    assert_eq!(
        events,
        vec![GenerationEvent::Failed(GenerationError::InputTooLong {
            prompt_tokens: 4,
            context_tokens: 4
        })]
    );
    assert!(produced.lock().unwrap().is_empty());
}

#[tokio::test]
async fn dropped_receiver_cancels_generation() {
    let (h, produced, thread) = start(vec![&b"a"[..]; 1000], 100, 4);
    let mut rx = h.submit(request("x", 1000, &[])).unwrap();
    assert!(matches!(
        rx.recv().await,
        Some(GenerationEvent::Started { .. })
    ));
    drop(rx);
    drop(h);
    thread.join().unwrap();
    let produced = produced.lock().unwrap();
    assert_eq!(produced.len(), 1);
    assert!(
        produced[0] < 1000,
        "cancelled early, produced {}",
        produced[0]
    );
}

#[tokio::test]
async fn full_queue_refuses_at_once() {
    // No engine thread: nothing drains the queue.
    let (h, _queue) = channel(&SchedulerConfig { queue_len: 2 });
    let _a = h.submit(request("x", 1, &[])).unwrap();
    let _b = h.submit(request("x", 1, &[])).unwrap();
    assert_eq!(
        h.submit(request("x", 1, &[])).unwrap_err(),
        SubmitError::QueueFull
    );
}

#[tokio::test]
async fn readiness_follows_the_engine() {
    let (h, queue) = channel(&SchedulerConfig::default());
    assert!(h.model().is_none());
    let produced = Arc::new(Mutex::new(Vec::new()));
    let mut exec = FakeExecutor {
        pieces: vec![],
        context: 8,
        produced,
    };
    let _t = std::thread::spawn(move || queue.run(&mut exec));
    assert_eq!(h.wait_ready().await.unwrap().name, "fake");
}
