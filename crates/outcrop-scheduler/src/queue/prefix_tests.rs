//! Prefix reuse against a fake executor that models KV cells: each cell holds a position, a
//! token and the set of sequences that see it. A sequence must see exactly its own tokens at
//! positions 0..pos when it decodes, and the pool must never overflow.
use super::*;
use crate::{Decode, PromptTokens, Sampled, SeqId};
use outcrop_types::{CacheAt, CachePoint, CacheTtl, Prompt, PromptCache, Sampling, Usage};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

struct Cell {
    pos: u32,
    token: u32,
    seqs: BTreeSet<SeqId>,
}

#[derive(Default)]
struct Seen {
    /// (seq, pos of the first token decoded) of each prompt chunk.
    chunks: Vec<(SeqId, u32)>,
    most_cells: usize,
}

struct KvFake {
    slots: u32,
    context: u32,
    kv: u32,
    cells: Vec<Cell>,
    begun: HashMap<SeqId, u32>,
    seen: Arc<Mutex<Seen>>,
}

impl KvFake {
    fn visible(&self, seq: SeqId) -> Vec<(u32, u32)> {
        let mut v: Vec<(u32, u32)> = self
            .cells
            .iter()
            .filter(|c| c.seqs.contains(&seq))
            .map(|c| (c.pos, c.token))
            .collect();
        v.sort();
        v
    }

    fn drop_seq(&mut self, seq: SeqId) {
        for c in &mut self.cells {
            c.seqs.remove(&seq);
        }
        self.cells.retain(|c| !c.seqs.is_empty());
    }
}

/// A word's token (FNV-1a): equal words are equal tokens.
fn token(word: &str) -> u32 {
    word.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

impl Executor for KvFake {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: "kv-fake".into(),
            context_tokens: self.context,
            max_sequences: self.slots,
            kv_tokens: self.kv,
        }
    }

    /// Words are tokens; a `|` word marks where the next checkpoint falls.
    fn tokenize_prompt(
        &mut self,
        prompt: &Prompt,
        points: &[CacheAt],
    ) -> Result<PromptTokens, GenerationError> {
        let Prompt::Raw(text) = prompt else {
            panic!("raw prompts only")
        };
        let mut out = PromptTokens::default();
        for w in text.split_whitespace() {
            if w == "|" {
                out.checkpoints.push(out.tokens.len() as u32);
            } else {
                out.tokens.push(token(w));
            }
        }
        out.checkpoints.resize(points.len(), 0);
        Ok(out)
    }

    fn begin(&mut self, seq: SeqId, _: &Sampling) -> Result<(), GenerationError> {
        self.drop_seq(seq);
        self.begun.insert(seq, 0);
        Ok(())
    }

    fn step(&mut self, work: &[Decode<'_>]) -> Result<Vec<Sampled>, GenerationError> {
        let mut out = Vec::new();
        for d in work {
            let visible = self.visible(d.seq);
            assert_eq!(
                visible.len() as u32,
                d.pos,
                "seq {} sees positions 0..pos before decoding at pos",
                d.seq
            );
            assert!(visible.iter().enumerate().all(|(i, (p, _))| *p == i as u32));
            if self.begun.get(&d.seq) == Some(&0) {
                // Nothing sampled yet: a prompt chunk.
                self.seen.lock().unwrap().chunks.push((d.seq, d.pos));
            }
            for (i, &t) in d.tokens.iter().enumerate() {
                self.cells.push(Cell {
                    pos: d.pos + i as u32,
                    token: t,
                    seqs: BTreeSet::from([d.seq]),
                });
            }
            assert!(
                self.cells.len() as u32 <= self.kv,
                "the KV pool overflowed: {} cells of {}",
                self.cells.len(),
                self.kv
            );
            let mut seen = self.seen.lock().unwrap();
            seen.most_cells = seen.most_cells.max(self.cells.len());
            if d.sample {
                let said = self.begun.get_mut(&d.seq).unwrap();
                *said += 1;
                out.push(Sampled {
                    seq: d.seq,
                    token: token("x"),
                    end_of_turn: *said > 2,
                    piece: b"x".to_vec(),
                });
            }
        }
        Ok(out)
    }

    fn end(&mut self, seq: SeqId) {
        self.begun.remove(&seq);
        self.drop_seq(seq);
    }

    fn reset(&mut self) {
        self.cells.clear();
    }

    fn shared_sequences(&self) -> usize {
        16
    }

    fn share(&mut self, from: SeqId, to: SeqId, start: u32, end: u32) {
        for c in &mut self.cells {
            if c.seqs.contains(&from) && (start..end).contains(&c.pos) {
                c.seqs.insert(to);
            }
        }
    }

    fn forget(&mut self, seq: SeqId) {
        assert!(seq >= self.slots as usize, "forget is for stored prefixes");
        self.drop_seq(seq);
    }
}

fn start(kv: u32, entries: usize) -> (SchedulerHandle, Arc<Mutex<Seen>>) {
    start_with(kv, entries, true)
}

fn start_with(kv: u32, entries: usize, unmarked: bool) -> (SchedulerHandle, Arc<Mutex<Seen>>) {
    let (handle, queue) = channel(&SchedulerConfig {
        step_tokens: 64,
        prompts_per_step: 4,
        prefix_entries: entries,
        prefix_min_tokens: 4,
        reuse_unmarked: unmarked,
        ..SchedulerConfig::default()
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut exec = KvFake {
        slots: 4,
        context: 64,
        kv,
        cells: Vec::new(),
        begun: HashMap::new(),
        seen: seen.clone(),
    };
    std::thread::spawn(move || queue.run(&mut exec));
    (handle, seen)
}

fn words(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{prefix}{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn req(text: &str, points: usize) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Raw(text.into()),
        max_tokens: 4,
        sampling: Sampling::greedy(),
        stop_sequences: Vec::new(),
        label: None,
        exclusive: false,
        tier: Default::default(),
        cache: PromptCache {
            points: (0..points)
                .map(|_| CachePoint {
                    at: CacheAt::System,
                    ttl: CacheTtl::FiveMinutes,
                })
                .collect(),
            min_tokens: 8,
            scope: 1,
        },
    }
}

async fn usage(h: &SchedulerHandle, r: GenerationRequest) -> Usage {
    let mut rx = h.submit(r).unwrap();
    while let Some(e) = rx.recv().await {
        match e {
            GenerationEvent::Finished { usage, .. } => return usage,
            GenerationEvent::Failed(e) => panic!("{e}"),
            _ => {}
        }
    }
    panic!("no end")
}

#[tokio::test]
async fn a_repeated_prompt_computes_only_its_last_token() {
    let (h, seen) = start(256, 8);
    let prompt = words("w", 20);
    let first = usage(&h, req(&prompt, 0)).await;
    assert_eq!(first, Usage::new(20, 2));
    let second = usage(&h, req(&prompt, 0)).await;
    assert_eq!(
        second,
        Usage::new(20, 2),
        "automatic reuse is not a cache read"
    );
    let chunks = seen.lock().unwrap().chunks.clone();
    assert_eq!(chunks.last().unwrap().1, 19, "{chunks:?}");
    let g = h.gauges();
    assert_eq!((g.prefix_hits, g.prefix_misses), (1, 1));
    assert_eq!(g.prefix_reused_tokens, 19);
    assert!(g.cached_kv >= 20);
}

#[tokio::test]
async fn by_default_only_prompts_with_checkpoints_reuse_prefixes() {
    let (h, seen) = start_with(256, 8, false);
    let prompt = words("w", 20);
    usage(&h, req(&prompt, 0)).await;
    usage(&h, req(&prompt, 0)).await;
    let chunks = seen.lock().unwrap().chunks.clone();
    assert_eq!(chunks.last().unwrap().1, 0, "computed whole: {chunks:?}");
    assert_eq!(h.gauges().prefix_entries, 0, "nothing kept");
    let marked = format!("{} | {}", words("sys", 12), words("a", 5));
    usage(&h, req(&marked, 1)).await;
    let again = usage(&h, req(&marked, 1)).await;
    assert_eq!(again.cache_read_input_tokens, 12);
    let g = h.gauges();
    assert_eq!((g.prefix_hits, g.prefix_misses), (1, 1));
}

#[tokio::test]
async fn a_scope_reads_only_the_checkpoints_it_wrote() {
    let (h, _) = start(256, 8);
    let prompt = format!("{} | {}", words("sys", 12), words("a", 5));
    let mine = usage(&h, req(&prompt, 1)).await;
    assert_eq!(mine.cache_write_input_tokens, 12);
    let mut theirs = req(&prompt, 1);
    theirs.cache.scope = 2;
    let first = usage(&h, theirs.clone()).await;
    assert_eq!(
        (
            first.cache_write_input_tokens,
            first.cache_read_input_tokens
        ),
        (12, 0),
        "another account writes its own"
    );
    let again = usage(&h, theirs).await;
    assert_eq!(again.cache_read_input_tokens, 12);
}

#[tokio::test]
async fn a_checkpoint_is_written_then_read() {
    let (h, _) = start(256, 8);
    let head = words("sys", 12);
    let a = format!("{head} | {}", words("a", 5));
    let b = format!("{head} | {}", words("b", 6));
    let write = usage(&h, req(&a, 1)).await;
    assert_eq!(
        (
            write.cache_write_input_tokens,
            write.cache_read_input_tokens
        ),
        (12, 0)
    );
    assert_eq!(write.input_tokens, 5);
    let read = usage(&h, req(&b, 1)).await;
    assert_eq!(
        (read.cache_write_input_tokens, read.cache_read_input_tokens),
        (0, 12)
    );
    assert_eq!(read.input_tokens, 6);
    assert_eq!(read.prompt_tokens(), 18);
}

#[tokio::test]
async fn a_checkpoint_below_the_minimum_caches_nothing() {
    let (h, _) = start(256, 8);
    let a = format!("{} | {}", words("s", 5), words("a", 5));
    for _ in 0..2 {
        let u = usage(&h, req(&a, 1)).await;
        assert_eq!(u, Usage::new(10, 2));
    }
}

#[tokio::test]
async fn a_longer_checkpoint_reads_the_earlier_one_and_writes_the_rest() {
    let (h, _) = start(256, 8);
    let head = words("sys", 10);
    let turn = words("t", 6);
    usage(&h, req(&format!("{head} | {}", words("q", 3)), 1)).await;
    let u = usage(&h, req(&format!("{head} {turn} | {}", words("q", 3)), 1)).await;
    assert_eq!(
        (
            u.cache_read_input_tokens,
            u.cache_write_input_tokens,
            u.input_tokens
        ),
        (10, 6, 3)
    );
}

#[tokio::test]
async fn concurrent_users_share_one_prefix() {
    let (h, seen) = start(256, 8);
    let head = words("sys", 20);
    usage(&h, req(&format!("{head} | {}", words("z", 2)), 1)).await;
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let h = h.clone();
            let text = format!("{head} | {}", words(&format!("u{i}x"), 3));
            tokio::spawn(async move { usage(&h, req(&text, 1)).await })
        })
        .collect();
    for run in runs {
        let u = run.await.unwrap();
        assert_eq!((u.cache_read_input_tokens, u.input_tokens), (20, 3));
    }
    // Each user computed its own three tokens only: far fewer cells than four copies.
    assert!(seen.lock().unwrap().most_cells < 20 + 2 + 4 * (3 + 4) + 40);
}

#[tokio::test]
async fn stored_prefixes_yield_to_running_requests() {
    // A pool of 64 cells: each prompt of 30 tokens plus 4 to generate is stored after use,
    // and must be evicted for the next distinct prompt to fit.
    let (h, seen) = start(64, 8);
    for i in 0..6 {
        let u = usage(&h, req(&words(&format!("p{i}x"), 30), 0)).await;
        assert_eq!(u.input_tokens, 30);
    }
    let g = h.gauges();
    assert!(g.prefix_evictions >= 4, "{g:?}");
    assert!(seen.lock().unwrap().most_cells <= 64);
    assert!(g.cached_kv <= 64);
}

#[tokio::test]
async fn a_conversation_grows_one_entry() {
    // Each turn's prompt is the last one, its answer ("x x": two generated tokens whose
    // cells the store kept) and a new message: only the new message is computed.
    let (h, seen) = start(512, 2);
    let mut text = words("c", 10);
    for turn in 0..5 {
        if turn > 0 {
            text = format!("{text} x x");
        }
        text = format!("{text} {}", words(&format!("t{turn}x"), 6));
        usage(&h, req(&text, 0)).await;
        let chunks = seen.lock().unwrap().chunks.clone();
        let from = chunks.last().unwrap().1;
        assert_eq!(from, if turn == 0 { 0 } else { 10 + 8 * turn });
    }
    let g = h.gauges();
    assert_eq!(g.prefix_entries, 1, "{g:?}");
    assert_eq!(g.prefix_hits, 4);
    assert_eq!(g.cached_kv, 10 + 6 * 5 + 2 * 4 + 2);
}
