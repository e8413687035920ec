//! The endpoints of one remote backing model: each with its own bound on generations in
//! flight and a health state. A generation goes to the healthy endpoint with the fewest
//! outstanding requests (optionally the one its prompt's prefix hashes to, so a conversation
//! keeps finding its KV cache there); consecutive failures eject an endpoint, and an active
//! check (`GET /models`) lets it rejoin.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(crate) struct Endpoint {
    /// The base URL, ending in `/v1`.
    pub url: String,
    in_flight: AtomicUsize,
    slots: Arc<Semaphore>,
    healthy: AtomicBool,
    failures: AtomicU32,
}

/// Where a pool's endpoints stand, for health and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    pub in_flight: usize,
    pub healthy: usize,
    pub total: usize,
}

pub(crate) struct Pool {
    endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
    /// Consecutive failures that eject an endpoint; 0: never ejected.
    eject_after: u32,
    /// Requests with the same prefix go to the same endpoint while it is not much busier
    /// than the least busy one.
    prefix_affinity: bool,
}

/// Why no endpoint was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoEndpoint {
    /// Every healthy endpoint has `max_in_flight` generations running.
    Busy,
    /// None is healthy (or all were tried).
    Unhealthy,
}

/// One generation's hold on an endpoint: a slot of its `max_in_flight`, counted as
/// outstanding until dropped.
pub(crate) struct Lease {
    endpoint: Arc<Endpoint>,
    index: usize,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    pub fn url(&self) -> &str {
        &self.endpoint.url
    }

    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How far another endpoint may be busier than the least busy one and still be chosen for
/// its prefix.
const AFFINITY_SLACK: usize = 2;

impl Pool {
    pub fn new(
        urls: &[String],
        max_in_flight: usize,
        eject_after: u32,
        prefix_affinity: bool,
    ) -> Self {
        Pool {
            endpoints: urls
                .iter()
                .map(|url| {
                    Arc::new(Endpoint {
                        url: url.clone(),
                        in_flight: AtomicUsize::new(0),
                        slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
                        healthy: AtomicBool::new(true),
                        failures: AtomicU32::new(0),
                    })
                })
                .collect(),
            next: AtomicUsize::new(0),
            eject_after,
            prefix_affinity,
        }
    }

    pub fn urls(&self) -> impl Iterator<Item = (usize, &str)> {
        self.endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| (i, e.url.as_str()))
    }

    /// An endpoint for a generation, skipping those in `tried`.
    pub fn choose(&self, prefix: Option<u64>, tried: &[usize]) -> Result<Lease, NoEndpoint> {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut candidates: Vec<usize> = (0..n)
            .map(|i| (start + i) % n)
            .filter(|i| !tried.contains(i) && self.endpoints[*i].healthy.load(Ordering::Relaxed))
            .collect();
        if candidates.is_empty() {
            return Err(NoEndpoint::Unhealthy);
        }
        // Least outstanding first; the rotation above breaks ties (a stable sort keeps it).
        candidates.sort_by_key(|i| self.endpoints[*i].in_flight.load(Ordering::Relaxed));
        if let (true, Some(hash)) = (self.prefix_affinity, prefix) {
            let least = self.endpoints[candidates[0]]
                .in_flight
                .load(Ordering::Relaxed);
            let preferred = (hash % n as u64) as usize;
            if let Some(at) = candidates.iter().position(|i| *i == preferred) {
                if self.endpoints[preferred].in_flight.load(Ordering::Relaxed)
                    <= least + AFFINITY_SLACK
                {
                    candidates.remove(at);
                    candidates.insert(0, preferred);
                }
            }
        }
        for i in candidates {
            let endpoint = &self.endpoints[i];
            if let Ok(permit) = endpoint.slots.clone().try_acquire_owned() {
                endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
                return Ok(Lease {
                    endpoint: endpoint.clone(),
                    index: i,
                    _permit: permit,
                });
            }
        }
        Err(NoEndpoint::Busy)
    }

    /// A request or check that worked: the endpoint's failures start again from zero, and an
    /// ejected endpoint rejoins.
    pub fn succeeded(&self, index: usize) {
        let e = &self.endpoints[index];
        e.failures.store(0, Ordering::Relaxed);
        if !e.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!(endpoint = %e.url, "remote endpoint healthy again; it rejoins");
        }
    }

    /// A request or check that failed for the endpoint's sake (unreachable, a 5xx, a broken
    /// stream); enough in a row eject it.
    pub fn failed(&self, index: usize) {
        let e = &self.endpoints[index];
        let failures = e.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if self.eject_after > 0
            && failures >= self.eject_after
            && e.healthy.swap(false, Ordering::Relaxed)
        {
            tracing::warn!(endpoint = %e.url, failures, "remote endpoint ejected after consecutive failures");
        }
    }

    pub fn standing(&self) -> Standing {
        Standing {
            in_flight: self
                .endpoints
                .iter()
                .map(|e| e.in_flight.load(Ordering::Relaxed))
                .sum(),
            healthy: self
                .endpoints
                .iter()
                .filter(|e| e.healthy.load(Ordering::Relaxed))
                .count(),
            total: self.endpoints.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize, max: usize) -> Pool {
        let urls: Vec<String> = (0..n).map(|i| format!("http://e{i}/v1")).collect();
        Pool::new(&urls, max, 2, false)
    }

    #[test]
    fn least_outstanding_first_and_busy_when_full() {
        let p = pool(2, 2);
        let a = p.choose(None, &[]).unwrap();
        let b = p.choose(None, &[]).unwrap();
        assert_ne!(a.index(), b.index(), "the idle endpoint is chosen");
        let c = p.choose(None, &[]).unwrap();
        let d = p.choose(None, &[]).unwrap();
        assert_ne!(c.index(), d.index());
        assert_eq!(p.choose(None, &[]).err(), Some(NoEndpoint::Busy));
        drop(c);
        assert!(p.choose(None, &[]).is_ok());
        assert_eq!(p.standing().in_flight, 3);
    }

    #[test]
    fn failures_eject_and_success_brings_back() {
        let p = pool(2, 4);
        p.failed(0);
        assert_eq!(p.standing().healthy, 2, "one failure is not enough");
        p.failed(0);
        assert_eq!(p.standing().healthy, 1);
        for _ in 0..5 {
            assert_eq!(p.choose(None, &[]).unwrap().index(), 1);
        }
        assert_eq!(p.choose(None, &[1]).err(), Some(NoEndpoint::Unhealthy));
        p.succeeded(0);
        assert_eq!(p.standing().healthy, 2);
    }

    #[test]
    fn a_prefix_keeps_its_endpoint_unless_it_is_much_busier() {
        let urls: Vec<String> = (0..3).map(|i| format!("http://e{i}/v1")).collect();
        let p = Pool::new(&urls, 16, 2, true);
        let held: Vec<Lease> = (0..3).map(|_| p.choose(Some(4), &[]).unwrap()).collect();
        assert!(held.iter().all(|l| l.index() == 1), "4 % 3 = endpoint 1");
        // Three ahead of the others: beyond the slack, the least busy is chosen.
        assert_ne!(p.choose(Some(4), &[]).unwrap().index(), 1);
    }
}
