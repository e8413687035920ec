//! Console sessions: random tokens in memory (a restart signs everyone out), each with its
//! principal, the region chosen, a CSRF token and an expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const COOKIE: &str = "outcrop_session";
/// The regions the selector offers (Bedrock's); this instance answers in each of them.
pub const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
];
const LIFETIME: Duration = Duration::from_secs(8 * 3600);

#[derive(Debug, Clone)]
pub struct Session {
    pub account_id: String,
    pub principal_arn: String,
    /// The region the console acts in (ARNs, the region selector); any region is served.
    pub region: String,
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
            region: REGIONS[0].to_owned(),
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

    /// Switches the session's region; `false` for a region not offered.
    pub fn set_region(&self, id: &str, region: &str) -> bool {
        if !REGIONS.contains(&region) {
            return false;
        }
        let mut all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match all.get_mut(id) {
            Some(s) => {
                s.region = region.to_owned();
                true
            }
            None => false,
        }
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
        assert!(s.set_region(&id, "eu-west-1"));
        assert!(!s.set_region(&id, "mars-north-1"));
        assert_eq!(s.get(&id).unwrap().region, "eu-west-1");
        assert_eq!(
            cookie_value(Some(&format!("a=b; {COOKIE}={id}"))),
            Some(id.as_str())
        );
        s.end(&id);
        assert!(s.get(&id).is_none());
        assert_eq!(cookie_value(None), None);
    }
}
