//! Continuous batching: which sequences hold slots, and what each step decodes.

use crate::prefix::{Hit, Mark, PrefixStore};
use crate::queue::{Gauges, Job, SchedulerConfig};
use crate::{Decode, Executor, PromptTokens, Sampled, SeqId, StopMatcher, Utf8Assembler};
use outcrop_engine::GenerationEvent;
use outcrop_types::{CacheAt, GenerationError, ModelInfo, PromptCache, StopReason, Usage};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request waiting for a slot; its prompt is tokenized once, on first consideration.
struct Waiting {
    job: Job,
    prompt: Option<PromptTokens>,
}

/// A sequence holding a slot.
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
    /// Generated tokens whose cells are computed, kept with the prompt when it is stored:
    /// the next turn of a conversation starts with this answer.
    decoded: Vec<u32>,
    utf8: Utf8Assembler,
    stops: StopMatcher,
    /// The stored prefix whose cells hold this sequence's first positions (pinned), and how
    /// many positions.
    anchor: Option<(SeqId, u32)>,
    /// Checkpoints to store once the prompt is computed that far (cache writes), with their
    /// TTLs, in prompt order.
    write_at: VecDeque<(u32, Duration)>,
    cache_read: u32,
    cache_write: u32,
    /// The part of `cache_write` kept for an hour.
    cache_write_1h: u32,
    /// Whether the whole prompt is in the prefix store (or is not to be stored).
    stored: bool,
}

impl Active {
    fn pos(&self) -> u32 {
        (self.prefilled + self.generated as usize) as u32
    }

    fn usage(&self) -> Usage {
        Usage {
            input_tokens: self.prompt.len() as u32 - self.cache_read - self.cache_write,
            output_tokens: self.generated,
            cache_read_input_tokens: self.cache_read,
            cache_write_input_tokens: self.cache_write,
            cache_write_1h_input_tokens: self.cache_write_1h,
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
    store: PrefixStore,
    /// Prompts without checkpoints reuse and leave prefixes too.
    reuse_unmarked: bool,
    gauges: Arc<Gauges>,
}

/// What admission decided about a prompt and the prefix store.
struct CachePlan {
    hit: Option<Hit>,
    read: u32,
    write_at: VecDeque<(u32, Duration)>,
}

impl Batcher {
    pub fn new(
        info: &ModelInfo,
        config: &SchedulerConfig,
        shared_sequences: usize,
        gauges: Arc<Gauges>,
    ) -> Self {
        let slots = info.max_sequences.max(1) as usize;
        let entries = config.prefix_entries.min(shared_sequences);
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
            store: PrefixStore::new(slots, entries, config.prefix_min_tokens),
            reuse_unmarked: config.reuse_unmarked,
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
                for (i, chunk) in &plan {
                    if chunk.prompt_tokens > 0 {
                        self.remember(exec, *i);
                    }
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
                    if chunk.prompt_tokens > 0 {
                        self.remember(exec, i);
                    }
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
            let need = (prompt.tokens.len() as u64 + u64::from(head.job.request.max_tokens))
                .min(u64::from(self.context_tokens));
            let cache = head.job.request.cache.clone();
            let cached = !exclusive
                && head.job.request.max_tokens > 0
                && self.store.enabled()
                && (self.reuse_unmarked || !cache.points.is_empty());
            let Some((mut plan, need)) = self.make_room(exec, &prompt, need, cached) else {
                if let Some(head) = self.waiting.front_mut() {
                    head.prompt = Some(prompt);
                }
                break;
            };
            if cached {
                self.plan_checkpoints(&cache, &prompt, &mut plan);
            }
            let read = plan.read;
            let prompt = prompt.tokens;
            let mut job = self.waiting.pop_front().expect("head exists").job;
            job.queued = None; // admitted: no longer counts against the queue
            self.publish();
            let input_tokens = prompt.len() as u32;
            if job.request.max_tokens == 0 {
                let usage = Usage {
                    input_tokens,
                    output_tokens: 0,
                    ..Default::default()
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
                self.store.clear();
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
            let mut prefilled = 0;
            if let Some(hit) = plan.hit {
                exec.share(hit.entry, seq, 0, hit.len);
                self.store.pin(hit.entry);
                prefilled = hit.len as usize;
                self.gauges.prefix_hits.fetch_add(1, Ordering::Relaxed);
                self.gauges
                    .reused_tokens
                    .fetch_add(u64::from(hit.len), Ordering::Relaxed);
            } else if cached {
                self.gauges.prefix_misses.fetch_add(1, Ordering::Relaxed);
            }
            let (write, write_1h) = written(read, &plan.write_at);
            let stops = StopMatcher::new(&job.request.stop_sequences);
            self.active.push(Active {
                job,
                reserved: need,
                seq,
                prompt,
                prefilled,
                next: None,
                generated: 0,
                decoded: Vec::new(),
                utf8: Utf8Assembler::default(),
                stops,
                anchor: plan.hit.map(|h| (h.entry, h.len)),
                write_at: plan.write_at,
                cache_write_1h: write_1h,
                cache_read: read,
                cache_write: write,
                stored: !cached,
            });
            // A prompt reused whole but for its last token may be done with already.
            let i = self.active.len() - 1;
            self.remember(exec, i);
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
        if let Some(prev) = a.next.take() {
            a.decoded.push(prev);
        }
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
        if outcome.is_ok() {
            self.keep_answer(exec, seq);
        }
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
        if let Some((entry, _)) = a.anchor {
            self.store.unpin(entry);
        }
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
        self.gauges
            .cached_kv
            .store(self.store.held() as usize, Ordering::Relaxed);
        self.gauges
            .prefix_entries
            .store(self.store.len(), Ordering::Relaxed);
    }

    fn fits(&self, need: u64) -> bool {
        self.reserved + self.store.held() + need <= self.kv_tokens
    }

    /// Evicts stored prefixes nobody holds (except `keep`) until `need` more cells fit.
    fn evict_for<E: Executor>(&mut self, exec: &mut E, need: u64, keep: Option<SeqId>) -> bool {
        while !self.fits(need) {
            let Some(id) = self.store.evict(keep) else {
                return false;
            };
            exec.forget(id);
            self.gauges.prefix_evictions.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Finds the stored prefix the prompt can reuse and makes room for the cells it still
    /// needs (`need` without reuse), evicting stored prefixes as needed; `None` when it does
    /// not fit yet. Returns the plan and the cells to reserve.
    fn make_room<E: Executor>(
        &mut self,
        exec: &mut E,
        prompt: &PromptTokens,
        need: u64,
        cached: bool,
    ) -> Option<(CachePlan, u64)> {
        let mut hit = if cached {
            self.store.expire(Instant::now());
            self.store.longest(&prompt.tokens)
        } else {
            None
        };
        let with = |h: Option<Hit>| need - h.map_or(0, |h| u64::from(h.len)).min(need);
        if !self.evict_for(exec, with(hit), hit.map(|h| h.entry)) {
            // The reused entry itself may have to go for the rest to fit.
            if !self.evict_for(exec, need, None) {
                return None;
            }
            hit = self.store.longest(&prompt.tokens);
            if !self.fits(with(hit)) {
                hit = None;
            }
        }
        let plan = CachePlan {
            hit,
            read: 0,
            write_at: VecDeque::new(),
        };
        Some((plan, with(hit)))
    }

    /// Decides the cache read and write of a prompt with explicit checkpoints: the longest
    /// prefix ending at a checkpoint that a live checkpoint holds (and this prompt reuses) is
    /// read; the rest up to its last checkpoint is written.
    fn plan_checkpoints(
        &mut self,
        cache: &PromptCache,
        prompt: &PromptTokens,
        plan: &mut CachePlan,
    ) {
        let min = cache.min_tokens.max(1);
        let points: Vec<(u32, Duration)> = prompt
            .checkpoints
            .iter()
            .zip(&cache.points)
            .filter(|(&at, _)| at >= min && at as usize <= prompt.tokens.len())
            .map(|(&at, p)| (at, p.ttl.duration()))
            .collect();
        if points.is_empty() {
            return;
        }
        let now = Instant::now();
        let offsets: Vec<u32> = points.iter().map(|(at, _)| *at).collect();
        let mut read = self
            .store
            .checkpointed(&prompt.tokens, &offsets, cache.scope, now);
        // Read only what this prompt really reuses (all but the last token at most).
        let reused = plan.hit.map_or(0, |h| h.len);
        if read > reused + 1 {
            read = 0;
        }
        if read > 0 {
            self.store.refresh(&prompt.tokens, read, cache.scope, now);
        }
        plan.read = read;
        let mut points: Vec<(u32, Duration)> =
            points.into_iter().filter(|(at, _)| *at > read).collect();
        points.sort_by_key(|(at, _)| *at);
        points.dedup_by_key(|(at, _)| *at);
        plan.write_at = points.into();
    }

    /// Keeps what a sequence has computed of its prompt in the prefix store: a pending
    /// checkpoint once the prompt is computed that far, the whole prompt once it is done.
    fn remember<E: Executor>(&mut self, exec: &mut E, i: usize) {
        while let Some(&(at, ttl)) = self.active[i].write_at.front() {
            if self.active[i].prefilled < at as usize {
                break;
            }
            self.active[i].write_at.pop_front();
            self.store_prefix(exec, i, at, Some(ttl));
        }
        let a = &self.active[i];
        if !a.stored && a.prefilled == a.prompt.len() {
            let len = a.prompt.len() as u32;
            self.active[i].stored = true;
            self.store_prefix(exec, i, len, None);
        }
    }

    /// Stores the first `len` positions of a sequence, sharing its cells: as a checkpoint
    /// when `ttl` is given. The cells move from the sequence's reservation to the store.
    fn store_prefix<E: Executor>(
        &mut self,
        exec: &mut E,
        i: usize,
        len: u32,
        ttl: Option<Duration>,
    ) {
        let a = &self.active[i];
        let checkpoint = ttl.map(|ttl| Mark {
            scope: a.job.request.cache.scope,
            until: Instant::now() + ttl,
            ttl,
        });
        let seq = a.seq;
        let tokens = a.prompt[..len as usize].to_vec();
        if let Some((anchor, base)) = a.anchor {
            let (anchor_len, automatic) = self.store.describe(anchor).unwrap_or((0, false));
            if self.store.holds(anchor, &tokens) {
                // Stored already: a checkpoint marks it, or a part of it.
                if let Some(mark) = checkpoint {
                    if anchor_len == len {
                        self.store.mark_checkpoint(anchor, mark);
                    } else if let Some(id) =
                        self.insert(exec, &tokens, Some((anchor, len)), checkpoint)
                    {
                        exec.share(anchor, id, 0, len);
                    }
                }
                return;
            }
            if checkpoint.is_none()
                && automatic
                && anchor_len == base
                && self.store.extend(anchor, &tokens)
            {
                exec.share(seq, anchor, base, len);
                self.moved_to_store(i, anchor, len - base, len);
                return;
            }
        }
        let anchor = self.active[i].anchor;
        let Some(id) = self.insert(exec, &tokens, anchor, checkpoint) else {
            return;
        };
        exec.share(seq, id, 0, len);
        self.store.pin(id);
        if let Some((old, _)) = anchor {
            self.store.unpin(old);
        }
        let base = anchor.map_or(0, |(_, b)| b);
        self.moved_to_store(i, id, len - base.min(len), len);
    }

    /// Grows the automatic entry holding a finished sequence's whole prompt by the answer's
    /// computed cells, as llama-server keeps a slot's answer: a conversation's next turn then
    /// computes only its new message.
    fn keep_answer<E: Executor>(&mut self, exec: &mut E, seq: SeqId) {
        let Some(i) = self.index_of(seq) else {
            return;
        };
        let a = &self.active[i];
        let Some((anchor, base)) = a.anchor else {
            return;
        };
        if !a.stored || a.decoded.is_empty() || base as usize != a.prompt.len() {
            return;
        }
        let tokens = [a.prompt.as_slice(), a.decoded.as_slice()].concat();
        let len = tokens.len() as u32;
        if self.store.describe(anchor) == Some((base, true)) && self.store.extend(anchor, &tokens) {
            exec.share(seq, anchor, base, len);
            self.moved_to_store(i, anchor, len - base, len);
        }
    }

    /// A new entry, evicting the least useful one when every id is taken.
    fn insert<E: Executor>(
        &mut self,
        exec: &mut E,
        tokens: &[u32],
        parent: Option<(SeqId, u32)>,
        checkpoint: Option<Mark>,
    ) -> Option<SeqId> {
        if !self.store.has_room() {
            let id = self.store.evict(parent.map(|p| p.0))?;
            exec.forget(id);
            self.gauges.prefix_evictions.fetch_add(1, Ordering::Relaxed);
        }
        self.store.insert(tokens, parent, checkpoint)
    }

    fn moved_to_store(&mut self, i: usize, entry: SeqId, cells: u32, len: u32) {
        let a = &mut self.active[i];
        let cells = u64::from(cells).min(a.reserved);
        a.reserved -= cells;
        a.anchor = Some((entry, len));
        self.reserved -= cells;
        self.publish();
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

/// Tokens written to the cache after `read` up to each checkpoint, and those of them under a
/// one-hour TTL (each segment takes the TTL of the checkpoint that ends it).
fn written(read: u32, points: &VecDeque<(u32, Duration)>) -> (u32, u32) {
    let mut from = read;
    let (mut all, mut long) = (0, 0);
    for &(at, ttl) in points {
        let n = at.saturating_sub(from);
        all += n;
        if ttl >= outcrop_types::CacheTtl::OneHour.duration() {
            long += n;
        }
        from = from.max(at);
    }
    (all, long)
}

/// Tokenizes a prompt and checks that it, plus one generated token, fits a sequence.
fn checked_prompt<E: Executor>(
    exec: &mut E,
    job: &Job,
    context_tokens: u32,
) -> Result<PromptTokens, GenerationError> {
    let points: Vec<CacheAt> = job.request.cache.points.iter().map(|p| p.at).collect();
    let prompt = exec.tokenize_prompt(&job.request.prompt, &points)?;
    let n = prompt.tokens.len();
    if n == 0 {
        return Err(GenerationError::Template("the prompt is empty".into()));
    }
    if n as u64 >= u64::from(context_tokens) {
        return Err(GenerationError::InputTooLong {
            prompt_tokens: n.min(u32::MAX as usize) as u32,
            context_tokens,
        });
    }
    Ok(prompt)
}
