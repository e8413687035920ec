//! Console sessions: random tokens in memory (a restart signs everyone out), each with its
//! principal, a CSRF token and an expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const COOKIE: &str = "outcrop_session";
const LIFETIME: Duration = Duration::from_secs(8 * 3600);

#[derive(Debug, Clone)]
pub struct Session {
    pub account_id: String,
    pub principal_arn: String,
    pub csrf: String,
    expires: Instant,
}

#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
}

fn token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Sessions {
    /// Starts a session; returns its cookie value.
    pub fn create(&self, account_id: &str, principal_arn: &str) -> String {
        let id = token();
        let session = Session {
            account_id: account_id.to_owned(),
            principal_arn: principal_arn.to_owned(),
            csrf: token(),
            expires: Instant::now() + LIFETIME,
        };
        let mut all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, s| s.expires > Instant::now());
        all.insert(id.clone(), session);
        id
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        all.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    pub fn end(&self, id: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// The session cookie's value in a `Cookie` header.
pub fn cookie_value(header: Option<&str>) -> Option<&str> {
    header?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_cookies() {
        let s = Sessions::default();
        let id = s.create("0", "arn");
        assert_eq!(s.get(&id).unwrap().principal_arn, "arn");
        assert_eq!(
            cookie_value(Some(&format!("a=b; {COOKIE}={id}"))),
            Some(id.as_str())
        );
        s.end(&id);
        assert!(s.get(&id).is_none());
        assert_eq!(cookie_value(None), None);
    }
}
