//! Continuous batching: which sequences hold slots, and what each step decodes.

use crate::queue::{Gauges, Job, SchedulerConfig};
use crate::{Decode, Executor, Sampled, SeqId, StopMatcher, Utf8Assembler};
use outcrop_engine::GenerationEvent;
use outcrop_types::{GenerationError, ModelInfo, StopReason, Usage};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A sequence holding a slot.
/// A request waiting for a slot; its prompt is tokenized once, on first consideration.
struct Waiting {
    job: Job,
    prompt: Option<Vec<u32>>,
}

struct Active {
    job: Job,
    /// KV cells reserved for this sequence.
    reserved: u64,
    seq: SeqId,
    prompt: Vec<u32>,
    /// Prompt tokens already decoded.
    prefilled: usize,
    /// The token sampled last step, to decode next (None while prefilling).
    next: Option<u32>,
    generated: u32,
    utf8: Utf8Assembler,
    stops: StopMatcher,
}

impl Active {
    fn pos(&self) -> u32 {
        (self.prefilled + self.generated as usize) as u32
    }

    fn usage(&self) -> Usage {
        Usage {
            input_tokens: self.prompt.len() as u32,
            output_tokens: self.generated,
        }
    }
}

pub(crate) struct Batcher {
    context_tokens: u32,
    kv_tokens: u64,
    reserved: u64,
    step_tokens: usize,
    prompts_per_step: usize,
    free: Vec<SeqId>,
    waiting: VecDeque<Waiting>,
    /// In admission order: older sequences get their prompt chunks first.
    active: Vec<Active>,
    gauges: Arc<Gauges>,
}

impl Batcher {
    pub fn new(info: &ModelInfo, config: &SchedulerConfig, gauges: Arc<Gauges>) -> Self {
        let slots = info.max_sequences.max(1) as usize;
        Batcher {
            context_tokens: info.context_tokens,
            kv_tokens: u64::from(info.kv_tokens.max(info.context_tokens)),
            reserved: 0,
            // Every generating sequence must fit in a step, with room for prompt work.
            step_tokens: config.step_tokens.max(slots + 1),
            prompts_per_step: config.prompts_per_step.max(1),
            free: (0..slots).rev().collect(),
            waiting: VecDeque::new(),
            active: Vec::new(),
            gauges,
        }
    }

    /// Queues a request behind those of its own tier or a better one: waiting `priority`
    /// requests are admitted before `default` ones, and those before `flex`.
    pub fn enqueue(&mut self, job: Job) {
        let tier = job.request.tier;
        let at = self
            .waiting
            .iter()
            .position(|w| w.job.request.tier > tier)
            .unwrap_or(self.waiting.len());
        self.waiting.insert(at, Waiting { job, prompt: None });
        self.publish();
    }

    pub fn is_idle(&self) -> bool {
        self.active.is_empty() && self.waiting.is_empty()
    }

    /// One scheduling round: drop cancelled work, admit into free slots, decode one step.
    pub fn step<E: Executor>(&mut self, exec: &mut E) {
        self.drop_cancelled(exec);
        self.admit(exec);
        if self.active.is_empty() {
            return;
        }
        let plan = self.plan();
        let work: Vec<Decode<'_>> = plan.iter().map(|(i, d)| d.bind(&self.active[*i])).collect();
        match exec.step(&work) {
            Ok(sampled) => {
                drop(work);
                for (i, chunk) in &plan {
                    self.active[*i].prefilled += chunk.prompt_tokens;
                }
                for s in sampled {
                    self.on_sampled(exec, s);
                }
            }
            Err(e) if plan.len() == 1 => {
                drop(work);
                tracing::error!(error = %e, "decode step failed; failing its sequence");
                let seq = self.active[plan[0].0].seq;
                self.finish(exec, seq, Err(e));
            }
            Err(e) => {
                drop(work);
                // llama.cpp leaves the KV cache as it was when a batch fails, so each
                // sequence is decoded again on its own: only those that fail alone fail.
                tracing::warn!(error = %e, sequences = plan.len(), "decode step failed; decoding its sequences one by one");
                let plan: Vec<(SeqId, Chunk)> = plan
                    .into_iter()
                    .map(|(i, chunk)| (self.active[i].seq, chunk))
                    .collect();
                self.step_alone(exec, plan);
            }
        }
    }

    /// Decodes each planned sequence in a step of its own, failing those whose step fails.
    fn step_alone<E: Executor>(&mut self, exec: &mut E, plan: Vec<(SeqId, Chunk)>) {
        for (seq, chunk) in plan {
            let Some(i) = self.index_of(seq) else {
                continue;
            };
            let result = exec.step(&[chunk.bind(&self.active[i])]);
            match result {
                Ok(sampled) => {
                    self.active[i].prefilled += chunk.prompt_tokens;
                    for s in sampled {
                        self.on_sampled(exec, s);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, seq, "decode failed for this sequence alone; failing it");
                    self.finish(exec, seq, Err(e));
                }
            }
        }
    }

    /// Ends all waiting and running generations with [`GenerationError::ShuttingDown`].
    pub fn abort_all<E: Executor>(&mut self, exec: &mut E) {
        for w in self.waiting.drain(..) {
            let _ = w
                .job
                .events
                .send(GenerationEvent::Failed(GenerationError::ShuttingDown));
        }
        let seqs: Vec<SeqId> = self.active.iter().map(|a| a.seq).collect();
        for seq in seqs {
            self.finish(exec, seq, Err(GenerationError::ShuttingDown));
        }
        self.publish();
    }

    fn drop_cancelled<E: Executor>(&mut self, exec: &mut E) {
        self.waiting.retain(|w| !w.job.events.is_closed());
        let cancelled: Vec<SeqId> = self
            .active
            .iter()
            .filter(|a| a.job.events.is_closed())
            .map(|a| a.seq)
            .collect();
        for seq in cancelled {
            self.release(exec, seq);
        }
        self.publish();
    }

    /// Admits waiting requests, oldest first, while a slot and enough KV cells are free.
    /// A request that does not fit yet keeps its place at the head of the queue.
    ///
    /// An exclusive request runs alone: it waits for the running sequences to end, starts on
    /// an emptied KV cache, and nothing is admitted beside it; its output then depends on
    /// nothing but itself.
    fn admit<E: Executor>(&mut self, exec: &mut E) {
        while !self.free.is_empty() {
            if self.active.iter().any(|a| a.job.request.exclusive) {
                break;
            }
            let Some(head) = self.waiting.front_mut() else {
                break;
            };
            let exclusive = head.job.request.exclusive;
            if exclusive && !self.active.is_empty() {
                break;
            }
            let prompt = match head.prompt.take() {
                Some(p) => p,
                None => match checked_prompt(exec, &head.job, self.context_tokens) {
                    Ok(p) => p,
                    Err(e) => {
                        let job = self.waiting.pop_front().expect("head exists").job;
                        let _ = job.events.send(GenerationEvent::Failed(e));
                        continue;
                    }
                },
            };
            let need = (prompt.len() as u64 + u64::from(head.job.request.max_tokens))
                .min(u64::from(self.context_tokens));
            if self.reserved + need > self.kv_tokens {
                head.prompt = Some(prompt);
                break;
            }
            let mut job = self.waiting.pop_front().expect("head exists").job;
            job.queued = None; // admitted: no longer counts against the queue
            self.publish();
            let input_tokens = prompt.len() as u32;
            if job.request.max_tokens == 0 {
                let usage = Usage {
                    input_tokens,
                    output_tokens: 0,
                };
                let _ = job.events.send(GenerationEvent::Started { input_tokens });
                let _ = job.events.send(GenerationEvent::Finished {
                    reason: StopReason::MaxTokens,
                    usage,
                });
                continue;
            }
            if exclusive {
                exec.reset();
            }
            // The lowest free id keeps running ids contiguous: with a KV stream per sequence,
            // llama.cpp decodes a run of consecutive ids in one ubatch.
            let lowest = (0..self.free.len())
                .min_by_key(|&i| self.free[i])
                .expect("checked non-empty");
            let seq = self.free.swap_remove(lowest);
            // A request whose sampler cannot be built fails before it is reported started.
            if let Err(e) = exec.begin(seq, &job.request.sampling) {
                self.free.push(seq);
                let _ = job.events.send(GenerationEvent::Failed(e));
                continue;
            }
            if job
                .events
                .send(GenerationEvent::Started { input_tokens })
                .is_err()
            {
                exec.end(seq);
                self.free.push(seq);
                continue;
            }
            self.reserved += need;
            let stops = StopMatcher::new(&job.request.stop_sequences);
            self.active.push(Active {
                job,
                reserved: need,
                seq,
                prompt,
                prefilled: 0,
                next: None,
                generated: 0,
                utf8: Utf8Assembler::default(),
                stops,
            });
        }
        self.publish();
    }

    /// Decode tokens for every generating sequence first, then prompt chunks, oldest first,
    /// of at most `prompts_per_step` sequences, within the step budget.
    fn plan(&self) -> Vec<(usize, Chunk)> {
        let mut plan = Vec::with_capacity(self.active.len());
        let mut budget = self.step_tokens;
        let mut prompts = self.prompts_per_step;
        for (i, a) in self.active.iter().enumerate() {
            if a.next.is_some() {
                plan.push((
                    i,
                    Chunk {
                        prompt_tokens: 0,
                        sample: true,
                    },
                ));
                budget -= 1;
            }
        }
        for (i, a) in self.active.iter().enumerate() {
            if a.next.is_none() && budget > 0 && prompts > 0 {
                let left = a.prompt.len() - a.prefilled;
                let take = left.min(budget);
                budget -= take;
                prompts -= 1;
                plan.push((
                    i,
                    Chunk {
                        prompt_tokens: take,
                        sample: take == left,
                    },
                ));
            }
        }
        plan
    }

    fn index_of(&self, seq: SeqId) -> Option<usize> {
        self.active.iter().position(|a| a.seq == seq)
    }

    fn on_sampled<E: Executor>(&mut self, exec: &mut E, s: Sampled) {
        let Some(i) = self.index_of(s.seq) else {
            return;
        };
        let a = &mut self.active[i];
        if s.end_of_turn {
            return self.finish(exec, s.seq, Ok(StopReason::EndOfTurn));
        }
        a.generated += 1;
        let text = a.utf8.push(&s.piece);
        let matched = a.stops.push(&text);
        if !matched.emit.is_empty()
            && a.job
                .events
                .send(GenerationEvent::Text(matched.emit))
                .is_err()
        {
            self.release(exec, s.seq); // the client left
            return;
        }
        if let Some(stop) = matched.stop {
            return self.finish(exec, s.seq, Ok(StopReason::StopSequence(stop)));
        }
        if a.generated >= a.job.request.max_tokens {
            return self.finish(exec, s.seq, Ok(StopReason::MaxTokens));
        }
        if a.pos() >= self.context_tokens {
            return self.finish(exec, s.seq, Ok(StopReason::ContextFull));
        }
        a.next = Some(s.token);
    }

    /// Ends a sequence: frees its slot, then reports its outcome (held-back text is flushed
    /// unless a stop sequence matched), so a client that sees the end sees a free slot.
    fn finish<E: Executor>(
        &mut self,
        exec: &mut E,
        seq: SeqId,
        outcome: Result<StopReason, GenerationError>,
    ) {
        let Some(mut a) = self.release(exec, seq) else {
            return;
        };
        let event = match outcome {
            Ok(reason) => {
                if !matches!(reason, StopReason::StopSequence(_)) {
                    let rest = a.stops.push(&a.utf8.finish()).emit + &a.stops.finish();
                    if !rest.is_empty() {
                        let _ = a.job.events.send(GenerationEvent::Text(rest));
                    }
                }
                GenerationEvent::Finished {
                    reason,
                    usage: a.usage(),
                }
            }
            Err(e) => GenerationEvent::Failed(e),
        };
        let _ = a.job.events.send(event);
    }

    fn release<E: Executor>(&mut self, exec: &mut E, seq: SeqId) -> Option<Active> {
        let i = self.index_of(seq)?;
        let a = self.active.remove(i);
        self.reserved -= a.reserved;
        exec.end(seq);
        self.free.push(seq);
        self.publish();
        Some(a)
    }

    fn publish(&self) {
        self.gauges
            .active
            .store(self.active.len(), Ordering::Relaxed);
        self.gauges
            .reserved_kv
            .store(self.reserved as usize, Ordering::Relaxed);
    }
}

/// What a step does for one sequence: `prompt_tokens` of its prompt (0: its next token).
struct Chunk {
    prompt_tokens: usize,
    sample: bool,
}

impl Chunk {
    fn bind<'a>(&self, a: &'a Active) -> Decode<'a> {
        match a.next {
            Some(_) => Decode {
                seq: a.seq,
                tokens: std::slice::from_ref(a.next.as_ref().expect("generating")),
                pos: a.pos() - 1,
                sample: true,
            },
            None => Decode {
                seq: a.seq,
                tokens: &a.prompt[a.prefilled..a.prefilled + self.prompt_tokens],
                pos: a.prefilled as u32,
                sample: self.sample,
            },
        }
    }
}

/// Tokenizes a prompt and checks that it, plus one generated token, fits a sequence.
fn checked_prompt<E: Executor>(
    exec: &mut E,
    job: &Job,
    context_tokens: u32,
) -> Result<Vec<u32>, GenerationError> {
    let prompt = exec.tokenize_prompt(&job.request.prompt)?;
    if prompt.is_empty() {
        return Err(GenerationError::Template("the prompt is empty".into()));
    }
    if prompt.len() as u64 >= u64::from(context_tokens) {
        return Err(GenerationError::InputTooLong {
            prompt_tokens: prompt.len().min(u32::MAX as usize) as u32,
            context_tokens,
        });
    }
    Ok(prompt)
}
