//! Scheduler behaviour against a fake executor: no model needed.
use super::*;
use crate::{Decode, PromptTokens, Sampled, SeqId};
use outcrop_types::CacheAt;
use outcrop_types::{Prompt, Sampling};
use outcrop_types::{StopReason, Usage};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// What the fake saw, for assertions.
#[derive(Default)]
struct Log {
    /// Per step: (seq, tokens, pos, sample).
    steps: Vec<Vec<(SeqId, usize, u32, bool)>>,
    begun: Vec<SeqId>,
    ended: Vec<SeqId>,
    /// Begin, step, end and reset, in the order they happened.
    order: Vec<String>,
    /// The token count of each prompt, in the order they were considered for admission.
    prompts: Vec<usize>,
}

/// Every sequence says the same script, then ends its turn. Prompts are one token per word.
/// Checks that positions are contiguous and that only begun slots are decoded.
struct FakeExecutor {
    script: Vec<&'static [u8]>,
    context: u32,
    slots: u32,
    kv_tokens: Option<u32>,
    step_delay: Duration,
    said: HashMap<SeqId, usize>,
    next_pos: HashMap<SeqId, u32>,
    log: Arc<Mutex<Log>>,
    /// A step with this token in it fails and changes nothing, as llama.cpp's decode leaves
    /// the KV cache when a batch fails.
    poison: Option<u32>,
}

impl Executor for FakeExecutor {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: "fake".into(),
            context_tokens: self.context,
            max_sequences: self.slots,
            kv_tokens: self.kv_tokens.unwrap_or(self.context * self.slots),
        }
    }

    fn tokenize_prompt(
        &mut self,
        prompt: &Prompt,
        _: &[CacheAt],
    ) -> Result<PromptTokens, GenerationError> {
        let tokens: Vec<u32> = match prompt {
            Prompt::Raw(s) => s.split_whitespace().map(|w| w.len() as u32).collect(),
            Prompt::Chat(turns) | Prompt::ChatWithTools { turns, .. } => vec![1; turns.len()],
        };
        self.log.lock().unwrap().prompts.push(tokens.len());
        Ok(PromptTokens {
            tokens,
            checkpoints: Vec::new(),
        })
    }

    fn begin(&mut self, seq: SeqId, sampling: &Sampling) -> Result<(), GenerationError> {
        assert!(!self.said.contains_key(&seq), "slot {seq} begun twice");
        if sampling.constraint.is_some() {
            return Err(GenerationError::Constraint(
                "the fake has no grammars".into(),
            ));
        }
        self.said.insert(seq, 0);
        self.next_pos.insert(seq, 0);
        let mut log = self.log.lock().unwrap();
        log.begun.push(seq);
        log.order.push(format!("begin {seq}"));
        Ok(())
    }

    fn step(&mut self, work: &[Decode<'_>]) -> Result<Vec<Sampled>, GenerationError> {
        std::thread::sleep(self.step_delay);
        if let Some(p) = self.poison {
            if work.iter().any(|d| d.tokens.contains(&p)) {
                return Err(GenerationError::Engine("decode failed".into()));
            }
        }
        let mut out = Vec::new();
        let mut record = Vec::new();
        for d in work {
            let next = self
                .next_pos
                .get_mut(&d.seq)
                .expect("decoding a slot that was not begun");
            assert_eq!(d.pos, *next, "positions of seq {} are contiguous", d.seq);
            *next += d.tokens.len() as u32;
            record.push((d.seq, d.tokens.len(), d.pos, d.sample));
            if d.sample {
                let said = self.said.get_mut(&d.seq).unwrap();
                let (piece, eot) = match self.script.get(*said) {
                    Some(p) => (p.to_vec(), false),
                    None => (Vec::new(), true),
                };
                *said += 1;
                out.push(Sampled {
                    seq: d.seq,
                    token: 7,
                    end_of_turn: eot,
                    piece,
                });
            }
        }
        let mut log = self.log.lock().unwrap();
        let seqs: Vec<String> = record.iter().map(|r| r.0.to_string()).collect();
        log.order.push(format!("step {}", seqs.join(",")));
        log.steps.push(record);
        Ok(out)
    }

    fn end(&mut self, seq: SeqId) {
        assert!(
            self.said.remove(&seq).is_some(),
            "slot {seq} ended but not begun"
        );
        self.next_pos.remove(&seq);
        let mut log = self.log.lock().unwrap();
        log.ended.push(seq);
        log.order.push(format!("end {seq}"));
    }

    fn reset(&mut self) {
        assert!(self.said.is_empty(), "reset while sequences run");
        self.log.lock().unwrap().order.push("reset".into());
    }
}

struct Setup {
    script: Vec<&'static [u8]>,
    context: u32,
    slots: u32,
    kv_tokens: Option<u32>,
    step_tokens: usize,
    prompts_per_step: usize,
    queue_len: usize,
    step_delay: Duration,
    poison: Option<u32>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            script: vec![b"Hel", b"lo", b" there"],
            context: 100,
            slots: 4,
            kv_tokens: None,
            step_tokens: 64,
            prompts_per_step: 4,
            queue_len: 8,
            step_delay: Duration::ZERO,
            poison: None,
        }
    }
}

impl Setup {
    fn start(
        self,
    ) -> (
        SchedulerHandle,
        Arc<Mutex<Log>>,
        std::thread::JoinHandle<()>,
    ) {
        let (handle, queue) = channel(&SchedulerConfig {
            queue_len: self.queue_len,
            step_tokens: self.step_tokens,
            prompts_per_step: self.prompts_per_step,
            ..SchedulerConfig::default()
        });
        let log = Arc::new(Mutex::new(Log::default()));
        let mut exec = FakeExecutor {
            script: self.script,
            context: self.context,
            slots: self.slots,
            kv_tokens: self.kv_tokens,
            step_delay: self.step_delay,
            said: HashMap::new(),
            next_pos: HashMap::new(),
            log: log.clone(),
            poison: self.poison,
        };
        let thread = std::thread::spawn(move || queue.run(&mut exec));
        (handle, log, thread)
    }
}

fn request(prompt: &str, max_tokens: u32, stops: &[&str]) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Raw(prompt.into()),
        max_tokens,
        sampling: Sampling::greedy(),
        stop_sequences: stops.iter().map(|s| s.to_string()).collect(),
        label: None,
        exclusive: false,
        tier: Default::default(),
        cache: Default::default(),
    }
}

async fn collect(mut rx: GenerationStream) -> Vec<GenerationEvent> {
    let mut out = Vec::new();
    while let Some(e) = rx.recv().await {
        out.push(e);
    }
    out
}

fn text(events: &[GenerationEvent]) -> String {
    events
        .iter()
        .filter_map(|e| {
            if let GenerationEvent::Text(t) = e {
                Some(t.as_str())
            } else {
                None
            }
        })
        .collect()
}

/// Submits a one-token prompt asking for `max_tokens` and waits until it generates.
async fn generating(h: &SchedulerHandle, max_tokens: u32) -> GenerationStream {
    let mut stream = h.submit(request("a", max_tokens, &[])).unwrap();
    assert!(matches!(
        stream.recv().await,
        Some(GenerationEvent::Started { .. })
    ));
    assert!(
        matches!(stream.recv().await, Some(GenerationEvent::Text(_))),
        "the sequence generates"
    );
    stream
}

#[tokio::test]
async fn generation_reports_start_text_and_end() {
    let (h, log, _) = Setup::default().start();
    let events = collect(h.submit(request("a bb ccc", 10, &[])).unwrap()).await;
    assert_eq!(events[0], GenerationEvent::Started { input_tokens: 3 });
    assert_eq!(text(&events), "Hello there");
    assert_eq!(
        events.last().unwrap(),
        &GenerationEvent::Finished {
            reason: StopReason::EndOfTurn,
            usage: Usage {
                input_tokens: 3,
                output_tokens: 3,
                ..Default::default()
            }
        }
    );
    let log = log.lock().unwrap();
    assert_eq!(log.begun, log.ended, "the slot was freed");
}

#[tokio::test]
async fn stop_sequence_ends_generation_and_is_not_emitted() {
    let (h, _, _) = Setup {
        script: vec![b"Sure", b".\n", b"\nHu", b"man:", b" more"],
        ..Setup::default()
    }
    .start();
    let events = collect(h.submit(request("x", 10, &["\n\nHuman:"])).unwrap()).await;
    assert_eq!(text(&events), "Sure.");
    assert_eq!(
        events.last().unwrap(),
        &GenerationEvent::Finished {
            reason: StopReason::StopSequence("\n\nHuman:".into()),
            usage: Usage {
                input_tokens: 1,
                output_tokens: 4,
                ..Default::default()
            }
        }
    );
}

#[tokio::test]
async fn max_tokens_limits_output() {
    let (h, _, _) = Setup::default().start();
    let events = collect(h.submit(request("x", 2, &[])).unwrap()).await;
    assert_eq!(text(&events), "Hello");
    assert_eq!(
        events.last().unwrap(),
        &GenerationEvent::Finished {
            reason: StopReason::MaxTokens,
            usage: Usage {
                input_tokens: 1,
                output_tokens: 2,
                ..Default::default()
            }
        }
    );
    let events = collect(h.submit(request("x", 0, &[])).unwrap()).await;
    assert_eq!(events.len(), 2, "{events:?}");
}

#[tokio::test]
async fn prompt_that_fills_the_context_is_refused() {
    let (h, log, _) = Setup {
        context: 4,
        ..Setup::default()
    }
    .start();
    let events = collect(h.submit(request("a b c d", 10, &[])).unwrap()).await;
    assert_eq!(
        events,
        vec![GenerationEvent::Failed(GenerationError::InputTooLong {
            prompt_tokens: 4,
            context_tokens: 4
        })]
    );
    assert!(log.lock().unwrap().begun.is_empty());
}

#[tokio::test]
async fn generation_stops_at_the_context_end() {
    let (h, _, _) = Setup {
        context: 4,
        script: vec![b"a"; 10],
        ..Setup::default()
    }
    .start();
    let events = collect(h.submit(request("a b", 10, &[])).unwrap()).await;
    assert!(
        matches!(events.last().unwrap(), GenerationEvent::Finished { reason: StopReason::ContextFull, usage } if usage.input_tokens + usage.output_tokens <= 4),
        "{events:?}"
    );
}

#[tokio::test]
async fn step_budget_chunks_long_prompts() {
    let (h, log, _) = Setup {
        step_tokens: 8,
        ..Setup::default()
    }
    .start();
    let prompt = vec!["w"; 20].join(" ");
    collect(h.submit(request(&prompt, 1, &[])).unwrap()).await;
    let log = log.lock().unwrap();
    let chunks: Vec<(usize, u32, bool)> = log
        .steps
        .iter()
        .flatten()
        .map(|&(_, n, pos, s)| (n, pos, s))
        .collect();
    assert_eq!(chunks, vec![(8, 0, false), (8, 8, false), (4, 16, true)]);
}

#[tokio::test]
async fn running_streams_keep_flowing_during_a_long_prefill() {
    let (h, log, _) = Setup {
        step_tokens: 8,
        script: vec![b"x"; 40],
        step_delay: Duration::from_millis(1),
        ..Setup::default()
    }
    .start();
    let _first = generating(&h, 40).await;
    let long = vec!["w"; 30].join(" ");
    let second = h.submit(request(&long, 1, &[])).unwrap();
    collect(second).await;
    let log = log.lock().unwrap();
    let prefill_steps: Vec<&Vec<(SeqId, usize, u32, bool)>> = log
        .steps
        .iter()
        .filter(|s| s.iter().any(|&(seq, n, _, _)| seq == 1 && n > 1))
        .collect();
    assert!(
        prefill_steps.len() >= 4,
        "30 tokens under a budget of 8 take several steps"
    );
    for step in prefill_steps {
        assert!(
            step.iter().any(|&(seq, n, _, _)| seq == 0 && n == 1),
            "seq 0 decodes in every step: {step:?}"
        );
        assert!(
            step.iter().map(|&(_, n, _, _)| n).sum::<usize>() <= 8,
            "budget respected: {step:?}"
        );
    }
}

#[tokio::test]
async fn concurrent_sequences_share_steps_and_do_not_mix() {
    let (h, log, _) = Setup {
        script: vec![b"a", b"b", b"c", b"d"],
        step_delay: Duration::from_millis(1),
        ..Setup::default()
    }
    .start();
    let streams: Vec<_> = (0..4)
        .map(|i| h.submit(request(&format!("p{i}"), 10, &[])).unwrap())
        .collect();
    for s in streams {
        assert_eq!(text(&collect(s).await), "abcd");
    }
    let log = log.lock().unwrap();
    assert!(
        log.steps.iter().any(|s| s.len() >= 2),
        "sequences were batched together"
    );
    let mut begun = log.begun.clone();
    begun.sort_unstable();
    begun.dedup();
    assert!(begun.len() >= 2);
}

#[tokio::test]
async fn slots_are_limited_and_admission_is_fifo() {
    let (h, log, thread) = Setup {
        slots: 2,
        script: vec![b"x"; 5],
        step_delay: Duration::from_millis(1),
        ..Setup::default()
    }
    .start();
    let streams: Vec<_> = (0..5)
        .map(|i| h.submit(request(&format!("p{i}"), 5, &[])).unwrap())
        .collect();
    drop(h);
    for s in streams {
        assert_eq!(text(&collect(s).await), "xxxxx");
    }
    thread.join().unwrap(); // a slot is freed just after its Finished event is sent
    let log = log.lock().unwrap();
    assert!(
        log.steps.iter().all(|s| s.len() <= 2),
        "never more than 2 sequences"
    );
    assert_eq!(log.begun.len(), 5);
    assert_eq!(log.ended.len(), 5);
}

#[tokio::test]
async fn dropped_receiver_frees_the_slot() {
    let (h, log, _) = Setup {
        script: vec![b"a"; 10_000],
        step_delay: Duration::from_millis(1),
        ..Setup::default()
    }
    .start();
    let mut rx = h.submit(request("x", 10_000, &[])).unwrap();
    assert!(matches!(
        rx.recv().await,
        Some(GenerationEvent::Started { .. })
    ));
    assert!(matches!(rx.recv().await, Some(GenerationEvent::Text(_))));
    drop(rx);
    for _ in 0..1000 {
        if h.gauges().active_sequences == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(h.gauges().active_sequences, 0);
    let log = log.lock().unwrap();
    assert_eq!(log.ended, vec![0]);
    assert!(log.steps.len() < 10_000, "stopped early");
}

#[tokio::test]
async fn full_queue_refuses_at_once() {
    // No engine thread: nothing drains the queue.
    let (h, _queue) = channel(&SchedulerConfig {
        queue_len: 2,
        step_tokens: 16,
        prompts_per_step: 1,
        ..SchedulerConfig::default()
    });
    let _a = h.submit(request("x", 1, &[])).unwrap();
    let _b = h.submit(request("x", 1, &[])).unwrap();
    assert_eq!(
        h.submit(request("x", 1, &[])).unwrap_err(),
        SubmitError::QueueFull
    );
}

#[tokio::test]
async fn engine_stops_when_handles_are_gone() {
    let (h, _, thread) = Setup::default().start();
    assert_eq!(h.wait_ready().await.unwrap().name, "fake");
    let rx = h.submit(request("x", 3, &[])).unwrap();
    drop(h);
    assert_eq!(
        text(&collect(rx).await),
        "Hello there",
        "queued work is finished first"
    );
    thread.join().unwrap();
}

#[tokio::test]
async fn admission_reserves_kv_cells() {
    // 4 slots but KV for 2 requests of (1 prompt + 4 output) tokens: at most 2 run at once.
    let (h, log, thread) = Setup {
        slots: 4,
        kv_tokens: Some(10),
        context: 10,
        script: vec![b"x"; 4],
        step_delay: Duration::from_millis(1),
        ..Setup::default()
    }
    .start();
    let streams: Vec<_> = (0..4)
        .map(|i| h.submit(request(&format!("p{i}"), 4, &[])).unwrap())
        .collect();
    drop(h);
    for s in streams {
        assert_eq!(text(&collect(s).await), "xxxx");
    }
    thread.join().unwrap();
    let log = log.lock().unwrap();
    assert!(
        log.steps.iter().all(|s| s.len() <= 2),
        "never more than 2 sequences hold KV"
    );
    assert_eq!(log.ended.len(), 4);
}

#[tokio::test]
async fn queue_bound_holds_while_slots_are_busy() {
    // One slot, a queue of one: with one generating and one waiting, the next is refused.
    let (h, _, _) = Setup {
        slots: 1,
        queue_len: 1,
        script: vec![b"x"; 10_000],
        step_delay: Duration::from_millis(1),
        ..Setup::default()
    }
    .start();
    let mut running = h.submit(request("a", 10_000, &[])).unwrap();
    assert!(matches!(
        running.recv().await,
        Some(GenerationEvent::Started { .. })
    ));
    let _queued = h.submit(request("b", 1, &[])).unwrap();
    assert_eq!(h.gauges().waiting, 1);
    assert_eq!(
        h.submit(request("c", 1, &[])).unwrap_err(),
        SubmitError::QueueFull
    );
    drop(running);
}

#[tokio::test]
async fn abort_all_ends_running_and_waiting_work() {
    let (h, _, thread) = Setup {
        slots: 1,
        script: vec![b"x"; 100_000],
        step_delay: Duration::from_millis(1),
        ..Setup::default()
    }
    .start();
    let mut running = h.submit(request("a", 100_000, &[])).unwrap();
    assert!(matches!(
        running.recv().await,
        Some(GenerationEvent::Started { .. })
    ));
    let waiting = h.submit(request("b", 5, &[])).unwrap();
    h.abort_all();
    let rest = collect(running).await;
    assert_eq!(
        rest.last(),
        Some(&GenerationEvent::Failed(GenerationError::ShuttingDown))
    );
    assert_eq!(
        collect(waiting).await,
        vec![GenerationEvent::Failed(GenerationError::ShuttingDown)]
    );
    assert_eq!(
        h.submit(request("c", 1, &[])).unwrap_err(),
        SubmitError::Stopped
    );
    assert_eq!(h.gauges().active_sequences, 0);
    drop(h);
    thread.join().unwrap();
}

#[tokio::test]
async fn a_sampler_that_cannot_be_built_fails_the_request_before_it_starts() {
    let (h, log, _) = Setup {
        slots: 1,
        ..Default::default()
    }
    .start();
    let mut bad = request("a bb", 10, &[]);
    bad.sampling.constraint = Some(outcrop_types::Constraint::Json {
        schema: "{}".into(),
    });
    let events = collect(h.submit(bad).unwrap()).await;
    assert!(
        matches!(
            events.as_slice(),
            [GenerationEvent::Failed(GenerationError::Constraint(_))]
        ),
        "{events:?}"
    );
    // The slot is free again: the next request runs.
    let events = collect(h.submit(request("a", 10, &[])).unwrap()).await;
    assert_eq!(text(&events), "Hello there");
    assert_eq!(log.lock().unwrap().begun.len(), 1);
}

#[tokio::test]
async fn the_lowest_free_slot_is_taken() {
    // Running ids stay contiguous (llama.cpp decodes a run of consecutive ids as one ubatch).
    let (h, log, _) = Setup {
        slots: 3,
        script: vec![b"a"; 10_000],
        step_delay: Duration::from_millis(1),
        ..Setup::default()
    }
    .start();
    let first = h.submit(request("x", 1, &[])).unwrap();
    let second = h.submit(request("x", 3, &[])).unwrap();
    let long = h.submit(request("x", 10_000, &[])).unwrap();
    collect(first).await; // slot 0 is freed, then slot 1
    collect(second).await;
    let next = h.submit(request("x", 1, &[])).unwrap();
    collect(next).await;
    drop(long);
    assert_eq!(log.lock().unwrap().begun, vec![0, 1, 2, 0]);
}

/// Submits three 3-token prompts while a running sequence holds the engine, so all three are
/// admitted in the same round; returns, per step, how many prompt chunks it held.
async fn prompt_chunks_per_step(prompts_per_step: usize) -> Vec<usize> {
    let (h, log, _) = Setup {
        prompts_per_step,
        script: vec![b"x"; 40],
        step_delay: Duration::from_millis(5),
        ..Setup::default()
    }
    .start();
    let _running = generating(&h, 40).await;
    let streams: Vec<_> = (0..3)
        .map(|_| h.submit(request("p q r", 2, &[])).unwrap())
        .collect();
    for s in streams {
        assert_eq!(text(&collect(s).await), "xx");
    }
    let log = log.lock().unwrap();
    log.steps
        .iter()
        .map(|s| s.iter().filter(|&&(_, n, _, _)| n == 3).count())
        .filter(|&n| n > 0)
        .collect()
}

#[tokio::test]
async fn prompts_arriving_together_are_processed_one_per_step() {
    assert_eq!(prompt_chunks_per_step(1).await, vec![1, 1, 1]);
    assert_eq!(
        prompt_chunks_per_step(3).await,
        vec![3],
        "with a higher limit the same prompts share a step"
    );
}

#[tokio::test]
async fn an_exclusive_request_runs_alone_on_a_reset_cache() {
    let (handle, log, _thread) = Setup {
        script: vec![b"a", b"b", b"c", b"d", b"e", b"f"],
        step_delay: Duration::from_millis(2),
        ..Setup::default()
    }
    .start();
    let mut streams = Vec::new();
    for i in 0..5 {
        let mut r = request("one two three", 6, &[]);
        r.exclusive = i == 2;
        streams.push(handle.submit(r).unwrap());
    }
    for s in streams {
        let events = collect(s).await;
        assert!(
            matches!(events.last(), Some(GenerationEvent::Finished { .. })),
            "{events:?}"
        );
    }
    let order = log.lock().unwrap().order.clone();
    let reset = order
        .iter()
        .position(|e| e == "reset")
        .expect("the cache was reset");
    let seq = order[reset + 1]
        .strip_prefix("begin ")
        .expect("the exclusive sequence begins next")
        .to_owned();
    let end = reset
        + order[reset..]
            .iter()
            .position(|e| *e == format!("end {seq}"))
            .unwrap();
    for e in &order[reset + 2..end] {
        assert_eq!(
            *e,
            format!("step {seq}"),
            "nothing beside the exclusive sequence: {order:?}"
        );
    }
    // Others ran before it and after it.
    assert!(order[..reset].iter().any(|e| e.starts_with("begin")));
    assert!(order[end..].iter().any(|e| e.starts_with("begin")));
}

fn in_tier(mut r: GenerationRequest, tier: ServiceTier) -> GenerationRequest {
    r.tier = tier;
    r
}

#[tokio::test]
async fn waiting_requests_are_admitted_by_tier() {
    let (h, log, _) = Setup {
        slots: 1,
        script: vec![b"x"; 10_000],
        step_delay: Duration::from_millis(1),
        ..Setup::default()
    }
    .start();
    let running = generating(&h, 10_000).await;
    // Prompts of 1, 2 and 3 words tell the requests apart.
    let flex = h
        .submit(in_tier(request("f", 2, &[]), ServiceTier::Flex))
        .unwrap();
    let default = h.submit(request("d d", 2, &[])).unwrap();
    let priority = h
        .submit(in_tier(request("p p p", 2, &[]), ServiceTier::Priority))
        .unwrap();
    // Two more steps: the engine has taken all three in.
    let steps = log.lock().unwrap().steps.len();
    while log.lock().unwrap().steps.len() < steps + 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(running);
    for s in [flex, default, priority] {
        collect(s).await;
    }
    let log = log.lock().unwrap();
    assert_eq!(
        log.prompts,
        [1, 3, 2, 1],
        "the runner, then priority, default, flex"
    );
}

#[tokio::test]
async fn flex_is_refused_first_and_priority_last() {
    // A queue of 4: flex may take 2 places, default 4, priority 5.
    let (h, _, _) = Setup {
        slots: 1,
        queue_len: 4,
        script: vec![b"x"; 10_000],
        step_delay: Duration::from_millis(1),
        ..Setup::default()
    }
    .start();
    let _running = generating(&h, 10_000).await;
    let flex = |h: &SchedulerHandle| h.submit(in_tier(request("f", 1, &[]), ServiceTier::Flex));
    let mut held = vec![flex(&h).unwrap(), flex(&h).unwrap()];
    assert_eq!(flex(&h).unwrap_err(), SubmitError::QueueFull);
    held.push(h.submit(request("d", 1, &[])).unwrap());
    held.push(h.submit(request("d", 1, &[])).unwrap());
    assert_eq!(
        h.submit(request("d", 1, &[])).unwrap_err(),
        SubmitError::QueueFull
    );
    let priority =
        |h: &SchedulerHandle| h.submit(in_tier(request("p", 1, &[]), ServiceTier::Priority));
    held.push(priority(&h).unwrap());
    assert_eq!(priority(&h).unwrap_err(), SubmitError::QueueFull);
    assert_eq!(h.gauges().waiting, 5);
    // A place given back (a client gone) can be taken again.
    held.pop();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(priority(&h).is_ok());
}

#[tokio::test]
async fn a_failed_step_fails_only_the_sequences_that_fail_alone() {
    // A word of 13 letters is token 13, which the fake cannot decode.
    let (h, _, _) = Setup {
        poison: Some(13),
        step_delay: Duration::from_millis(5),
        ..Setup::default()
    }
    .start();
    let (good, bad, other) = tokio::join!(
        collect(h.submit(request("a fine prompt", 3, &[])).unwrap()),
        collect(h.submit(request("an extraordinary word", 3, &[])).unwrap()),
        collect(h.submit(request("also fine", 3, &[])).unwrap()),
    );
    assert_eq!(text(&good), "Hello there");
    assert_eq!(text(&other), "Hello there");
    assert!(
        matches!(
            bad.last(),
            Some(GenerationEvent::Failed(GenerationError::Engine(_)))
        ),
        "{bad:?}"
    );
}
