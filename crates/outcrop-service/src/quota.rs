//! Bedrock's on-demand quotas, per account and model: requests per minute, tokens per minute
//! and tokens per day. As on Bedrock, a call reserves its input tokens plus its maximum output
//! at admission and is settled to the tokens it really used when it ends. Windows slide over
//! the last minute (or day). State is in memory: one server process enforces its own quotas.

use crate::error::{TOO_MANY_REQUESTS, TOO_MANY_TOKENS};
use crate::ApiError;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// One model's limits; `None`: unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub tokens_per_day: Option<u64>,
}

/// Approximate published Bedrock on-demand defaults (us-east-1), by model id prefix; the
/// config overrides them per model.
fn default_limits(model_id: &str) -> Limits {
    const TABLE: &[(&str, u64, u64)] = &[
        ("anthropic.claude-instant", 1000, 1_000_000),
        ("anthropic.claude-v2", 500, 500_000),
        ("anthropic.claude-3-haiku", 1000, 2_000_000),
        ("anthropic.claude-3-opus", 50, 400_000),
        ("anthropic.", 500, 1_000_000),
        ("amazon.nova", 2000, 4_000_000),
        ("amazon.titan-embed", 2000, 300_000),
        ("amazon.titan-text", 400, 300_000),
        ("cohere.embed", 2000, 300_000),
        ("meta.", 800, 300_000),
        ("mistral.", 800, 300_000),
        ("", 400, 300_000),
    ];
    let (_, rpm, tpm) = TABLE
        .iter()
        .find(|(prefix, _, _)| model_id.starts_with(prefix))
        .expect("the empty prefix matches");
    Limits {
        requests_per_minute: Some(*rpm),
        tokens_per_minute: Some(*tpm),
        tokens_per_day: None,
    }
}

#[derive(Debug)]
struct Entry {
    at: Instant,
    tokens: u64,
}

#[derive(Debug, Default)]
struct Usage {
    next_id: u64,
    /// Admitted calls of the last day, oldest first, by id.
    calls: VecDeque<(u64, Entry)>,
}

impl Usage {
    fn prune(&mut self, now: Instant) {
        while self
            .calls
            .front()
            .is_some_and(|(_, e)| now.duration_since(e.at) >= Duration::from_secs(86_400))
        {
            self.calls.pop_front();
        }
    }

    fn since(&self, now: Instant, window: Duration) -> (u64, u64) {
        self.calls
            .iter()
            .filter(|(_, e)| now.duration_since(e.at) < window)
            .fold((0, 0), |(n, t), (_, e)| (n + 1, t + e.tokens))
    }
}

/// The quota state: this server's own sliding windows, or, with a shared store, fixed windows
/// in the store that every replica on it counts in (see [`Quotas::shared`]).
#[derive(Clone, Default)]
pub struct Quotas {
    /// Per-model limits replacing the defaults: the config file's, then the operator's.
    overrides: Arc<RwLock<HashMap<String, Limits>>>,
    usage: Arc<Mutex<HashMap<(String, String), Usage>>>,
    shared: Option<Arc<dyn outcrop_store::Store>>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("overrides", &self.overrides)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

/// An admitted call's reservation; settle it with the tokens really used.
#[derive(Debug, Clone)]
pub struct Permit {
    key: (String, String),
    id: u64,
    quotas: Quotas,
    /// In shared windows: the minute and day the tokens were reserved in, and how many.
    reserved: Option<(i64, i64, u64)>,
}

/// Minutes and days since the epoch, now.
fn window_indexes() -> (i64, i64) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    (secs / 60, secs / 86_400)
}

impl Quotas {
    pub fn new(overrides: HashMap<String, Limits>) -> Self {
        Quotas {
            overrides: Arc::new(RwLock::new(overrides)),
            usage: Arc::default(),
            shared: None,
        }
    }

    /// Quotas counted in `store`, shared by every server on it: requests and tokens per
    /// minute in the current minute, tokens per day in the current UTC day (fixed windows,
    /// each added to atomically, so servers together admit no more than a limit in any one
    /// window; a call refused by a later window gives its earlier counts back).
    pub fn shared(
        overrides: HashMap<String, Limits>,
        store: Arc<dyn outcrop_store::Store>,
    ) -> Self {
        Quotas {
            shared: Some(store),
            ..Quotas::new(overrides)
        }
    }

    /// Replaces every limit at once (a shared store's overrides, read again).
    pub fn replace_all(&self, limits: HashMap<String, Limits>) {
        *self.overrides.write().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    pub fn limits(&self, model_id: &str) -> Limits {
        self.overrides
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(model_id)
            .copied()
            .unwrap_or_else(|| default_limits(model_id))
    }

    /// Replaces a model's limits from now on; `None` goes back to the default.
    pub fn set(&self, model_id: &str, limits: Option<Limits>) {
        let mut all = self.overrides.write().unwrap_or_else(|e| e.into_inner());
        match limits {
            Some(l) => all.insert(model_id.to_owned(), l),
            None => all.remove(model_id),
        };
    }

    /// An account's use of a model now: requests and tokens in the last minute, tokens in the
    /// last day (reservations count until settled).
    pub fn used(&self, account: &str, model_id: &str) -> (u64, u64, u64) {
        let now = Instant::now();
        let all = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let Some(usage) = all.get(&(account.to_owned(), model_id.to_owned())) else {
            return (0, 0, 0);
        };
        let (requests, minute) = usage.since(now, Duration::from_secs(60));
        let (_, day) = usage.since(now, Duration::from_secs(86_400));
        (requests, minute, day)
    }

    /// Admits a call reserving `tokens`, or answers Bedrock's ThrottlingException.
    pub async fn admit(
        &self,
        account: &str,
        model_id: &str,
        tokens: u64,
    ) -> Result<Permit, ApiError> {
        match &self.shared {
            Some(store) => {
                self.admit_shared(store.as_ref(), account, model_id, tokens)
                    .await
            }
            None => self.admit_here(account, model_id, tokens),
        }
    }

    async fn admit_shared(
        &self,
        store: &dyn outcrop_store::Store,
        account: &str,
        model_id: &str,
        tokens: u64,
    ) -> Result<Permit, ApiError> {
        let limits = self.limits(model_id);
        let (minute, day) = window_indexes();
        let window = |kind, index| outcrop_store::QuotaWindow {
            account_id: account.to_owned(),
            model_id: model_id.to_owned(),
            kind,
            index,
        };
        let amount = i64::try_from(tokens).unwrap_or(i64::MAX);
        let steps = [
            (
                window("rpm", minute),
                1,
                limits.requests_per_minute,
                TOO_MANY_REQUESTS,
            ),
            (
                window("tpm", minute),
                amount,
                limits.tokens_per_minute,
                TOO_MANY_TOKENS,
            ),
            (
                window("tpd", day),
                amount,
                limits.tokens_per_day,
                TOO_MANY_TOKENS,
            ),
        ];
        for (i, (w, n, limit, refusal)) in steps.iter().enumerate() {
            if store.add_to_quota_window(w, *n, *limit).await? {
                continue;
            }
            for (earlier, n, _, _) in &steps[..i] {
                store.add_to_quota_window(earlier, -n, None).await?;
            }
            return Err(ApiError::Throttling((*refusal).into()));
        }
        Ok(Permit {
            key: (account.to_owned(), model_id.to_owned()),
            id: 0,
            quotas: self.clone(),
            reserved: Some((minute, day, tokens)),
        })
    }

    fn admit_here(&self, account: &str, model_id: &str, tokens: u64) -> Result<Permit, ApiError> {
        let limits = self.limits(model_id);
        let key = (account.to_owned(), model_id.to_owned());
        let now = Instant::now();
        let mut all = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let usage = all.entry(key.clone()).or_default();
        usage.prune(now);
        let (requests, minute_tokens) = usage.since(now, Duration::from_secs(60));
        let (_, day_tokens) = usage.since(now, Duration::from_secs(86_400));
        if limits.requests_per_minute.is_some_and(|l| requests >= l) {
            return Err(ApiError::Throttling(TOO_MANY_REQUESTS.into()));
        }
        let over = |limit: Option<u64>, used: u64| limit.is_some_and(|l| used + tokens > l);
        if over(limits.tokens_per_minute, minute_tokens) || over(limits.tokens_per_day, day_tokens)
        {
            return Err(ApiError::Throttling(TOO_MANY_TOKENS.into()));
        }
        usage.next_id += 1;
        let id = usage.next_id;
        usage.calls.push_back((id, Entry { at: now, tokens }));
        Ok(Permit {
            key,
            id,
            quotas: self.clone(),
            reserved: None,
        })
    }
}

impl Permit {
    /// Replaces the reservation with the tokens the call really used.
    pub fn settle(&self, tokens: u64) {
        if let (Some((minute, day, reserved)), Some(store)) = (self.reserved, &self.quotas.shared) {
            let delta = tokens as i64 - reserved as i64;
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            if delta == 0 {
                return;
            }
            let (store, (account_id, model_id)) = (store.clone(), self.key.clone());
            // The difference goes to the windows the reservation was made in, in the
            // background: a settlement never holds up an answer.
            runtime.spawn(async move {
                for (kind, index) in [("tpm", minute), ("tpd", day)] {
                    let window = outcrop_store::QuotaWindow {
                        account_id: account_id.clone(),
                        model_id: model_id.clone(),
                        kind,
                        index,
                    };
                    if let Err(e) = store.add_to_quota_window(&window, delta, None).await {
                        tracing::warn!(error = %e, "could not settle a shared quota window");
                    }
                }
            });
            return;
        }
        let mut all = self.quotas.usage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(usage) = all.get_mut(&self.key) {
            if let Some((_, e)) = usage.calls.iter_mut().find(|(id, _)| *id == self.id) {
                e.tokens = tokens;
            }
        }
    }
}

/// Sets (or with `None`, clears) a model's limits for every account, as an operator: needs
/// `outcrop:PutQuota`; stored, so it outlives a restart, and in force at once.
pub async fn put_limits(
    state: &crate::Service,
    principal: &crate::Principal,
    model_id: &str,
    limits: Option<Limits>,
) -> Result<(), ApiError> {
    let entry = state.catalog_entry(model_id)?;
    let arn = format!(
        "arn:aws:bedrock:{}::foundation-model/{}",
        principal.region, entry.id
    );
    crate::iam::authorize_action(state, principal, "outcrop:PutQuota", &[arn]).await?;
    match limits {
        Some(l) => {
            state
                .store
                .put_quota_override(&outcrop_store::QuotaOverride {
                    model_id: entry.id.clone(),
                    requests_per_minute: l.requests_per_minute,
                    tokens_per_minute: l.tokens_per_minute,
                    tokens_per_day: l.tokens_per_day,
                })
                .await?;
        }
        None => {
            state.store.delete_quota_override(&entry.id).await?;
        }
    }
    state.quotas.set(&entry.id, limits);
    tracing::info!(principal = %principal.arn, model = %entry.id, ?limits, "quota changed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(rpm: Option<u64>, tpm: Option<u64>) -> Quotas {
        let mut o = HashMap::new();
        o.insert(
            "m".to_owned(),
            Limits {
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
                tokens_per_day: None,
            },
        );
        Quotas::new(o)
    }

    #[tokio::test]
    async fn requests_per_minute() {
        let q = quotas(Some(2), None);
        q.admit("a", "m", 1).await.unwrap();
        q.admit("a", "m", 1).await.unwrap();
        assert_eq!(
            q.admit("a", "m", 1).await.unwrap_err().to_string(),
            TOO_MANY_REQUESTS
        );
        // Per account and per model.
        q.admit("b", "m", 1).await.unwrap();
        q.admit("a", "other", 1).await.unwrap();
    }

    #[tokio::test]
    async fn tokens_are_reserved_then_settled() {
        let q = quotas(None, Some(100));
        let p = q.admit("a", "m", 80).await.unwrap();
        assert_eq!(
            q.admit("a", "m", 30).await.unwrap_err().to_string(),
            TOO_MANY_TOKENS
        );
        p.settle(10);
        q.admit("a", "m", 30).await.unwrap();
        assert_eq!(q.used("a", "m"), (2, 40, 40));
    }

    #[tokio::test]
    async fn limits_can_change_at_run_time() {
        let q = quotas(Some(1), None);
        q.admit("a", "m", 1).await.unwrap();
        assert!(q.admit("a", "m", 1).await.is_err());
        q.set(
            "m",
            Some(Limits {
                requests_per_minute: Some(5),
                ..Limits::default()
            }),
        );
        q.admit("a", "m", 1).await.unwrap();
        q.set("m", None);
        assert_eq!(q.limits("m"), default_limits("m"));
    }

    /// Two servers on one store admit together no more than the limit, and a settlement
    /// gives back what a call did not use.
    #[tokio::test]
    async fn shared_windows_hold_across_servers() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn outcrop_store::Store> = Arc::new(
            outcrop_store::SqlStore::open(&dir.path().join("o.db"))
                .await
                .unwrap(),
        );
        let limits = || {
            HashMap::from([(
                "m".to_owned(),
                Limits {
                    requests_per_minute: Some(6),
                    tokens_per_minute: Some(1000),
                    tokens_per_day: None,
                },
            )])
        };
        let (a, b) = (
            Quotas::shared(limits(), store.clone()),
            Quotas::shared(limits(), store.clone()),
        );
        let mut admitted = 0;
        for i in 0..10 {
            let q = if i % 2 == 0 { &a } else { &b };
            admitted += usize::from(q.admit("acct", "m", 10).await.is_ok());
        }
        // Unless the minute turned during the loop, exactly the limit got in.
        assert!((6..=10).contains(&admitted), "{admitted}");
        let tokens = Quotas::shared(
            HashMap::from([(
                "t".to_owned(),
                Limits {
                    requests_per_minute: None,
                    tokens_per_minute: Some(100),
                    tokens_per_day: None,
                },
            )]),
            store.clone(),
        );
        let p = tokens.admit("acct", "t", 90).await.unwrap();
        let refused = b_refusal(&tokens).await;
        assert_eq!(refused, TOO_MANY_TOKENS);
        p.settle(10);
        // The settlement runs in the background.
        for _ in 0..50 {
            if tokens.admit("acct", "t", 50).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the settlement did not give the tokens back");
    }

    async fn b_refusal(q: &Quotas) -> String {
        q.admit("acct", "t", 20).await.unwrap_err().to_string()
    }

    #[test]
    fn default_limits_by_prefix() {
        assert_eq!(
            default_limits("anthropic.claude-v2:1").requests_per_minute,
            Some(500)
        );
    }
}
