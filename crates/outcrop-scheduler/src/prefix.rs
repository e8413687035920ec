//! The prefix store: KV cells of earlier prompts kept under sequence ids of their own (ids
//! past the slots), so that a prompt starting with the same tokens shares those cells
//! (llama.cpp's sequence copy: the cells gain a sequence id, nothing is copied) instead of
//! computing them again.
//!
//! Entries form a forest. An entry made by a sequence that had reused the first `base` cells
//! of another entry shares those cells with it (its parent) and owns only the rest; the store
//! counts the cells its entries own. An entry is evicted only when no running sequence (its
//! users) and no other entry (its children) holds its cells, so eviction never takes cells a
//! running sequence needs, and frees exactly what the entry owns. Explicit checkpoints keep
//! their entry ahead of automatic ones until their TTL lapses; a lapsed checkpoint leaves an
//! ordinary entry, still reusable, no longer counted as a cache read. A checkpoint belongs to
//! a scope (one account's use of one model id, as Bedrock keeps caches apart): the same cells
//! may serve several scopes, but each reads only what it wrote itself.

use crate::SeqId;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

struct Entry {
    /// The prompt tokens whose cells the entry holds, from position 0.
    tokens: Vec<u32>,
    /// The entry whose first `base` cells this one shares.
    parent: Option<SeqId>,
    base: u32,
    /// Entries made from this one's cells.
    children: u32,
    /// Running sequences sharing this entry's cells.
    users: u32,
    /// Least recently used first.
    used: u64,
    /// Explicit checkpoints, one per scope that wrote it: the entry is kept (before
    /// automatic entries) and read as a cache read by that scope until they lapse.
    checkpoints: Vec<Mark>,
}

impl Entry {
    fn len(&self) -> u32 {
        self.tokens.len() as u32
    }

    fn own(&self) -> u64 {
        u64::from(self.len() - self.base)
    }

    fn live_for(&self, scope: u64, now: Instant) -> bool {
        self.checkpoints
            .iter()
            .any(|m| m.scope == scope && m.until > now)
    }
}

/// A checkpoint on an entry: whose it is, until when it is a cache read, and how long each
/// read extends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub scope: u64,
    pub until: Instant,
    pub ttl: Duration,
}

/// A stored prefix that a prompt starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub entry: SeqId,
    /// Tokens of the prompt whose cells the entry holds.
    pub len: u32,
}

pub(crate) struct PrefixStore {
    entries: BTreeMap<SeqId, Entry>,
    free: Vec<SeqId>,
    /// Cells the entries own.
    held: u64,
    tick: u64,
    /// Shorter shared prefixes are not worth an entry's pin.
    min_tokens: u32,
}

fn common_prefix(a: &[u32], b: &[u32]) -> u32 {
    a.iter().zip(b).take_while(|(x, y)| x == y).count() as u32
}

impl PrefixStore {
    /// A store of at most `capacity` entries, under sequence ids from `first_id`.
    pub fn new(first_id: SeqId, capacity: usize, min_tokens: u32) -> Self {
        PrefixStore {
            entries: BTreeMap::new(),
            free: (first_id..first_id + capacity).rev().collect(),
            held: 0,
            tick: 0,
            min_tokens: min_tokens.max(1),
        }
    }

    pub fn held(&self) -> u64 {
        self.held
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn enabled(&self) -> bool {
        !self.free.is_empty() || !self.entries.is_empty()
    }

    /// The entry sharing the longest prefix with `tokens`, leaving at least the last token to
    /// compute (its logits choose the first generated token).
    pub fn longest(&self, tokens: &[u32]) -> Option<Hit> {
        let limit = (tokens.len() as u32).saturating_sub(1);
        self.entries
            .iter()
            .map(|(&entry, e)| Hit {
                entry,
                len: common_prefix(&e.tokens, tokens).min(limit),
            })
            .filter(|h| h.len >= self.min_tokens)
            .max_by_key(|h| (h.len, std::cmp::Reverse(h.entry)))
    }

    /// The longest prefix of `tokens` that a live checkpoint holds, ending at one of `points`
    /// or where an earlier checkpoint ended (up to the last of `points`, as Bedrock looks back
    /// from a checkpoint); 0 when none.
    pub fn checkpointed(&self, tokens: &[u32], points: &[u32], scope: u64, now: Instant) -> u32 {
        let Some(&last) = points.iter().max() else {
            return 0;
        };
        let mut best = 0;
        for e in self.entries.values().filter(|e| e.live_for(scope, now)) {
            let shared = common_prefix(&e.tokens, tokens);
            let ends = points.iter().copied().chain([e.len()]);
            for p in ends.filter(|&p| p <= last && p <= shared) {
                best = best.max(p);
            }
        }
        best
    }

    /// Extends the TTL of the scope's live checkpoints that hold `tokens[..len]` (a cache
    /// read).
    pub fn refresh(&mut self, tokens: &[u32], len: u32, scope: u64, now: Instant) {
        for e in self.entries.values_mut() {
            if e.len() > len || common_prefix(&e.tokens, tokens) < e.len() {
                continue;
            }
            for m in &mut e.checkpoints {
                if m.scope == scope && m.until > now {
                    m.until = m.until.max(now + m.ttl);
                }
            }
        }
    }

    fn touch(&mut self, id: SeqId) {
        self.tick += 1;
        if let Some(e) = self.entries.get_mut(&id) {
            e.used = self.tick;
        }
    }

    /// A running sequence shares `id`'s cells: it is not evicted until [`Self::unpin`].
    pub fn pin(&mut self, id: SeqId) {
        self.touch(id);
        if let Some(e) = self.entries.get_mut(&id) {
            e.users += 1;
        }
    }

    pub fn unpin(&mut self, id: SeqId) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.users = e.users.saturating_sub(1);
        }
    }

    /// Whether an id is free for [`Self::insert`].
    pub fn has_room(&self) -> bool {
        !self.free.is_empty()
    }

    /// Stores `tokens` as a new entry whose first `base` cells are `parent`'s; the caller then
    /// gives the entry's id the cells. `None` when no id is free.
    pub fn insert(
        &mut self,
        tokens: &[u32],
        parent: Option<(SeqId, u32)>,
        checkpoint: Option<Mark>,
    ) -> Option<SeqId> {
        let id = self.free.pop()?;
        let (parent, base) = match parent {
            Some((p, base)) if self.entries.contains_key(&p) => (Some(p), base),
            _ => (None, 0),
        };
        if let Some(p) = parent.and_then(|p| self.entries.get_mut(&p)) {
            p.children += 1;
        }
        let entry = Entry {
            tokens: tokens.to_vec(),
            parent,
            base: base.min(tokens.len() as u32),
            children: 0,
            users: 0,
            used: 0,
            checkpoints: checkpoint.into_iter().collect(),
        };
        self.held += entry.own();
        self.entries.insert(id, entry);
        self.touch(id);
        Some(id)
    }

    /// Grows an automatic entry in place to `tokens`, which must continue it exactly; the
    /// caller then gives it the new cells. Other holders of its cells are unaffected: they
    /// share a prefix of what it held.
    pub fn extend(&mut self, id: SeqId, tokens: &[u32]) -> bool {
        let Some(e) = self.entries.get_mut(&id) else {
            return false;
        };
        let grows = e.checkpoints.is_empty()
            && tokens.len() > e.tokens.len()
            && tokens.starts_with(&e.tokens);
        if grows {
            self.held += (tokens.len() - e.tokens.len()) as u64;
            e.tokens = tokens.to_vec();
            self.touch(id);
        }
        grows
    }

    /// Makes an entry a checkpoint of the mark's scope (or extends its TTL).
    pub fn mark_checkpoint(&mut self, id: SeqId, mark: Mark) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        match e.checkpoints.iter_mut().find(|m| m.scope == mark.scope) {
            Some(m) => {
                m.until = m.until.max(mark.until);
                m.ttl = mark.ttl;
            }
            None => e.checkpoints.push(mark),
        }
    }

    /// The entry's length and whether it is automatic.
    pub fn describe(&self, id: SeqId) -> Option<(u32, bool)> {
        self.entries
            .get(&id)
            .map(|e| (e.len(), e.checkpoints.is_empty()))
    }

    /// Whether the entry holds the cells of exactly `tokens` at its start.
    pub fn holds(&self, id: SeqId, tokens: &[u32]) -> bool {
        self.entries
            .get(&id)
            .is_some_and(|e| e.tokens.starts_with(tokens))
    }

    /// Lapses the checkpoints whose TTL ran out; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut lapsed = 0;
        for e in self.entries.values_mut() {
            let before = e.checkpoints.len();
            e.checkpoints.retain(|m| m.until > now);
            lapsed += before - e.checkpoints.len();
        }
        lapsed
    }

    /// Evicts the entry least worth keeping among those nobody holds (automatic before
    /// checkpointed, then least recently used), except `keep`. Returns its id, whose cells the
    /// caller frees.
    pub fn evict(&mut self, keep: Option<SeqId>) -> Option<SeqId> {
        let (&id, _) = self
            .entries
            .iter()
            .filter(|(id, e)| Some(**id) != keep && e.users == 0 && e.children == 0)
            .min_by_key(|(_, e)| (!e.checkpoints.is_empty(), e.used))?;
        self.remove(id);
        Some(id)
    }

    fn remove(&mut self, id: SeqId) {
        if let Some(e) = self.entries.remove(&id) {
            self.held -= e.own();
            if let Some(p) = e.parent.and_then(|p| self.entries.get_mut(&p)) {
                p.children -= 1;
            }
            self.free.push(id);
        }
    }

    /// Forgets every entry (the engine emptied its KV cache); returns their ids.
    pub fn clear(&mut self) -> Vec<SeqId> {
        let ids: Vec<SeqId> = self.entries.keys().copied().collect();
        for &id in &ids {
            self.entries.remove(&id);
            self.free.push(id);
        }
        self.held = 0;
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(scope: u64, now: Instant, ttl: Duration) -> Mark {
        Mark {
            scope,
            until: now + ttl,
            ttl,
        }
    }

    fn toks(n: u32, salt: u32) -> Vec<u32> {
        (0..n).map(|i| i * 7 + salt).collect()
    }

    #[test]
    fn the_longest_shared_prefix_wins_and_the_last_token_is_left() {
        let mut s = PrefixStore::new(8, 4, 4);
        let a = toks(20, 0);
        let id = s.insert(&a, None, None).unwrap();
        assert_eq!(s.held(), 20);
        // The same prompt again: all but its last token.
        assert_eq!(s.longest(&a), Some(Hit { entry: id, len: 19 }));
        let mut b = a[..12].to_vec();
        b.extend([999, 998]);
        assert_eq!(s.longest(&b), Some(Hit { entry: id, len: 12 }));
        // Below the minimum, no hit.
        let c = [a[0], a[1], 5];
        assert_eq!(s.longest(&c), None);
    }

    #[test]
    fn entries_held_by_a_sequence_or_a_child_are_not_evicted() {
        let mut s = PrefixStore::new(8, 4, 1);
        let a = toks(10, 0);
        let parent = s.insert(&a, None, None).unwrap();
        let mut b = a.clone();
        b.extend([500, 501, 502]);
        let child = s.insert(&b, Some((parent, 10)), None).unwrap();
        assert_eq!(s.held(), 13, "the child owns only what it added");
        s.pin(child);
        assert_eq!(s.evict(None), None, "pinned child, parent with a child");
        s.unpin(child);
        assert_eq!(s.evict(None), Some(child));
        assert_eq!(s.held(), 10);
        assert_eq!(s.evict(None), Some(parent));
        assert_eq!(s.held(), 0);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn automatic_entries_go_before_checkpoints_and_checkpoints_lapse() {
        let now = Instant::now();
        let ttl = Duration::from_secs(300);
        let mut s = PrefixStore::new(8, 4, 1);
        let cp = s
            .insert(&toks(10, 0), None, Some(mark(1, now, ttl)))
            .unwrap();
        let auto = s.insert(&toks(10, 1), None, None).unwrap();
        s.touch(auto);
        assert_eq!(s.evict(None), Some(auto), "automatic first, though newer");
        let prompt = [toks(10, 0), vec![1, 2, 3]].concat();
        assert_eq!(s.checkpointed(&prompt, &[10], 1, now), 10);
        assert_eq!(s.checkpointed(&prompt, &[5], 1, now), 5);
        // An earlier checkpoint's own end counts up to the request's last point.
        assert_eq!(s.checkpointed(&prompt, &[12], 1, now), 10);
        assert_eq!(
            s.checkpointed(&prompt, &[10], 2, now),
            0,
            "another scope reads only what it wrote"
        );
        s.mark_checkpoint(cp, mark(2, now, ttl));
        assert_eq!(s.checkpointed(&prompt, &[10], 2, now), 10);
        assert_eq!(s.expire(now + ttl), 2);
        assert_eq!(s.checkpointed(&prompt, &[10], 1, now + ttl), 0);
        assert_eq!(
            s.longest(&prompt),
            Some(Hit { entry: cp, len: 10 }),
            "a lapsed checkpoint is still reused"
        );
    }

    #[test]
    fn reads_extend_a_checkpoints_ttl() {
        let now = Instant::now();
        let ttl = Duration::from_secs(300);
        let mut s = PrefixStore::new(0, 2, 1);
        let t = toks(10, 0);
        s.insert(&t, None, Some(mark(1, now, ttl))).unwrap();
        let later = now + Duration::from_secs(200);
        s.refresh(&t, 10, 1, later);
        assert_eq!(
            s.checkpointed(&t, &[10], 1, now + ttl + Duration::from_secs(1)),
            10
        );
    }

    #[test]
    fn automatic_entries_grow_in_place() {
        let mut s = PrefixStore::new(0, 2, 1);
        let t = toks(10, 0);
        let id = s.insert(&t, None, None).unwrap();
        let longer = [t.clone(), vec![1, 2]].concat();
        assert!(s.extend(id, &longer));
        assert_eq!(s.held(), 12);
        assert!(!s.extend(id, &toks(14, 3)), "not a continuation");
        assert_eq!(s.describe(id), Some((12, true)));
    }

    #[test]
    fn ids_run_out_and_come_back() {
        let mut s = PrefixStore::new(4, 1, 1);
        let a = s.insert(&toks(3, 0), None, None).unwrap();
        assert_eq!(a, 4);
        assert!(s.insert(&toks(3, 1), None, None).is_none());
        assert_eq!(s.clear(), vec![4]);
        assert!(s.has_room());
        assert_eq!(s.held(), 0);
    }
}
