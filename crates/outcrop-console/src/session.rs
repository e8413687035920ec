//! Console sessions: random cookie tokens whose sessions the store keeps (only a hash of the
//! token), so every server on the store knows them and a restart signs nobody out. Each has
//! its principal, the access key it was opened with (deleting the key ends it), the region
//! chosen, a CSRF token and an expiry.

use outcrop_store::{ConsoleSession, Store};
use sha2::{Digest, Sha256};
use std::sync::Arc;

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
const LIFETIME: chrono::Duration = chrono::Duration::hours(8);

#[derive(Debug, Clone)]
pub struct Session {
    pub account_id: String,
    pub principal_arn: String,
    /// The region the console acts in (ARNs, the region selector); any region is served.
    pub region: String,
    pub csrf: String,
}

#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
}

fn token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Sessions { store }
    }

    /// Starts a session for the holder of `access_key_id`; returns its cookie value.
    pub async fn create(
        &self,
        account_id: &str,
        principal_arn: &str,
        access_key_id: &str,
    ) -> Result<String, outcrop_store::StoreError> {
        let id = token();
        let session = ConsoleSession {
            id_sha256: hash(&id),
            account_id: account_id.to_owned(),
            principal_arn: principal_arn.to_owned(),
            access_key_id: access_key_id.to_owned(),
            region: REGIONS[0].to_owned(),
            csrf: token(),
            expires_at: (chrono::Utc::now() + LIFETIME)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        self.store.create_console_session(&session, &now()).await?;
        Ok(id)
    }

    /// The live session of a cookie value (`None` also when the store cannot be read: the
    /// visitor is asked to sign in again).
    pub async fn get(&self, id: &str) -> Option<Session> {
        match self.store.console_session(&hash(id), &now()).await {
            Ok(found) => found.map(|s| Session {
                account_id: s.account_id,
                principal_arn: s.principal_arn,
                region: s.region,
                csrf: s.csrf,
            }),
            Err(e) => {
                tracing::error!(error = %e, "console sessions could not be read");
                None
            }
        }
    }

    /// Switches the session's region; `false` for a region not offered.
    pub async fn set_region(&self, id: &str, region: &str) -> bool {
        if !REGIONS.contains(&region) {
            return false;
        }
        self.store
            .set_console_session_region(&hash(id), region)
            .await
            .unwrap_or(false)
    }

    pub async fn end(&self, id: &str) {
        if let Err(e) = self.store.end_console_session(&hash(id)).await {
            tracing::error!(error = %e, "a console session could not be ended");
        }
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

    #[tokio::test]
    async fn sessions_and_cookies() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            outcrop_store::SqlStore::open(&dir.path().join("o.db"))
                .await
                .unwrap(),
        );
        store.ensure_defaults().await.unwrap();
        store.set_dev_key(true).await.unwrap();
        let s = Sessions::new(store);
        let id = s.create("0", "arn", "test").await.unwrap();
        assert_eq!(s.get(&id).await.unwrap().principal_arn, "arn");
        assert!(s.set_region(&id, "eu-west-1").await);
        assert!(!s.set_region(&id, "mars-north-1").await);
        assert_eq!(s.get(&id).await.unwrap().region, "eu-west-1");
        assert_eq!(
            cookie_value(Some(&format!("a=b; {COOKIE}={id}"))),
            Some(id.as_str())
        );
        s.end(&id).await;
        assert!(s.get(&id).await.is_none());
        assert_eq!(cookie_value(None), None);
    }
}
