//! A cap on the runtime calls one principal has running at once, so that one caller (a
//! runaway loop, a hostile client) cannot hold every slot of a shared server. A call holds its
//! place from admission until its answer, stream included, has ended.

use crate::ApiError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct Concurrency {
    /// `None`: no cap.
    limit: Option<usize>,
    running: Mutex<HashMap<String, usize>>,
}

/// A call's place; dropping it frees the place.
#[derive(Debug)]
pub struct Running {
    of: Arc<Concurrency>,
    principal: String,
}

impl Concurrency {
    pub fn new(limit: Option<usize>) -> Self {
        Concurrency {
            limit,
            running: Mutex::new(HashMap::new()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more call of `principal`, or Bedrock's throttling error when it has
    /// `limit` running already.
    pub fn enter(self: &Arc<Self>, principal: &str) -> Result<Running, ApiError> {
        let mut counts = self.counts();
        let n = counts.entry(principal.to_owned()).or_insert(0);
        if let Some(limit) = self.limit.filter(|l| *n >= *l) {
            if *n == 0 {
                counts.remove(principal);
            }
            return Err(ApiError::Throttling(format!(
                "Too many requests, please wait before trying again. (This caller has {limit} requests running, the most it may have at once.)"
            )));
        }
        *n += 1;
        Ok(Running {
            of: self.clone(),
            principal: principal.to_owned(),
        })
    }

    /// Calls `principal` has running.
    pub fn running(&self, principal: &str) -> usize {
        self.counts().get(principal).copied().unwrap_or(0)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut counts = self.of.counts();
        if let Some(n) = counts.get_mut(&self.principal) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.principal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_is_held_to_its_cap_and_others_are_not() {
        let c = Arc::new(Concurrency::new(Some(2)));
        let a = c.enter("alice").unwrap();
        let _b = c.enter("alice").unwrap();
        assert!(matches!(c.enter("alice"), Err(ApiError::Throttling(_))));
        let _bob = c.enter("bob").unwrap();
        drop(a);
        let _again = c.enter("alice").unwrap();
        assert_eq!(c.running("alice"), 2);
        drop(_again);
        drop(_b);
        assert_eq!(c.running("alice"), 0);
        assert!(c.counts().get("alice").is_none(), "no entry left behind");
    }

    #[test]
    fn no_cap_admits_everyone() {
        let c = Arc::new(Concurrency::new(None));
        let held: Vec<_> = (0..1000).map(|_| c.enter("x").unwrap()).collect();
        assert_eq!(c.running("x"), 1000);
        drop(held);
    }
}
