//! The service: what Outcrop does, whatever surface a request came in by. Identities and keys
//! (SigV4 authentication against the store), IAM evaluation, model access and agreements,
//! quotas, the usage ledger, invocation logging and usage reports, and the resolution of a
//! model identifier to its catalog entry and engine.
//!
//! It takes and returns typed values, never a wire body: the Bedrock wire crate, the console
//! and the CLI all call the same functions here. Errors are [`ApiError`] kinds with their
//! messages; each wire crate writes them in its own format.

#![forbid(unsafe_code)]

pub mod access;
pub mod api_keys;
pub mod auth;
pub mod concurrency;
pub mod embed;
pub mod error;
pub mod iam;
pub mod identities;
pub mod imports;
pub mod ledger;
pub mod logging;
mod origin;
pub mod quota;
mod resolve;
pub mod spool;
pub mod usage;

pub use access::{AccessMode, AccessStatus, AccountAccess, Mailer};
pub use auth::{AuthPolicy, Principal};
pub use error::ApiError;
pub use iam::{Permissions, PolicyDocument};
pub use logging::{Destinations, LogShipper, LoggingConfig};
pub use origin::Origin;
pub use quota::{Limits, Permit, Quotas};
pub use resolve::{resolve_model_id, Resolved};

use outcrop_engine::Engine;
use outcrop_models::Catalog;
use outcrop_store::Store;
use outcrop_types::Embedder;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything the service needs, shared by every surface (`Arc<Service>`).
pub struct Service {
    pub catalog: Catalog,
    /// Engines by backing-model name.
    pub engines: HashMap<String, Arc<dyn Engine>>,
    /// Embedding models by backing-model name.
    pub embedders: HashMap<String, Arc<dyn Embedder>>,
    /// Requests and tokens per minute (and day), per account and model.
    pub quotas: Quotas,
    /// Runtime calls each principal may have running at once.
    pub concurrency: Arc<concurrency::Concurrency>,
    /// Embedding requests computed at once (each is a blocking task); others wait.
    pub embed_slots: tokio::sync::Semaphore,
    pub store: Arc<dyn Store>,
    pub auth: AuthPolicy,
    pub access_mode: AccessMode,
    /// Where access notifications (RFC 5322 messages) are written; `None`: nowhere.
    pub outbox: Option<PathBuf>,
    /// Delivers model invocation logs, when the server can.
    pub log_shipper: Option<Arc<dyn LogShipper>>,
    /// Sends access notifications by e-mail too, when configured.
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Where usage records go when the store refuses them; `None`: they are lost (logged).
    pub spool: Option<Arc<spool::Spool>>,
    /// Copies imported models and makes their engines; `None`: Custom Model Import is off.
    pub model_host: Option<Arc<dyn imports::ModelHost>>,
    /// The engines of imported models invoked so far.
    pub imported: imports::Registry,
}

impl Service {
    /// A service over `store` and `catalog` with no engines and default settings: what the
    /// CLI manages identities and access with, and the base tests build on.
    pub fn new(store: Arc<dyn Store>, catalog: Catalog) -> Self {
        Service {
            catalog,
            engines: HashMap::new(),
            embedders: HashMap::new(),
            quotas: Quotas::default(),
            concurrency: Arc::new(concurrency::Concurrency::new(None)),
            embed_slots: tokio::sync::Semaphore::new(2),
            store,
            auth: AuthPolicy::default(),
            access_mode: AccessMode::Explicit,
            outbox: None,
            log_shipper: None,
            mailer: None,
            spool: None,
            model_host: None,
            imported: imports::Registry::default(),
        }
    }
}
