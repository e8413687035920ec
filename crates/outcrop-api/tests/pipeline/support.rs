//! One in-process server per test: the router over a temporary store and fake engines.

use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::Client;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use outcrop_api::{ApiState, PromptMode};
use outcrop_engine::{Engine, FakeEngine};
use outcrop_models::Catalog;
use outcrop_service::{AccessMode, Origin, Principal, Service};
use outcrop_store::{SqlStore, Store, UsageRecord};
use outcrop_types::{Embedder, Embedding, GenerationError};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// What every fake text model answers unless a test scripts otherwise.
pub const REPLY: &str = "Hello from the fake engine.";

pub struct App {
    pub url: String,
    pub state: Arc<ApiState>,
    pub engine: Arc<FakeEngine>,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

/// A deterministic 384-dimension embedder: one token per word.
struct FakeEmbedder;

impl Embedder for FakeEmbedder {
    fn name(&self) -> &str {
        "fake-embedder"
    }

    fn dimensions(&self) -> usize {
        384
    }

    fn embed(&self, text: &str) -> Result<Embedding, GenerationError> {
        let mut vector = vec![0.0f32; 384];
        for (i, b) in text.bytes().enumerate() {
            vector[(i * 31 + b as usize) % 384] += 1.0;
        }
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        vector.iter_mut().for_each(|x| *x /= norm);
        Ok(Embedding {
            vector,
            input_tokens: text.split_whitespace().count() as u32,
        })
    }
}

impl App {
    /// Every model enabled (`[access] mode = "open"`), answering [`REPLY`].
    pub async fn open() -> App {
        App::start(FakeEngine::replying("fake", REPLY), AccessMode::Open).await
    }

    pub async fn start(engine: FakeEngine, access_mode: AccessMode) -> App {
        let engine = Arc::new(engine);
        App::serving(engine.clone(), engine, access_mode).await
    }

    /// Every model enabled, text models answered by `engine` (`fake` is only recorded).
    pub async fn with_engine(engine: Arc<dyn Engine>) -> App {
        let fake = Arc::new(FakeEngine::replying("unused", REPLY));
        App::serving(engine, fake, AccessMode::Open).await
    }

    async fn serving(
        text: Arc<dyn Engine>,
        engine: Arc<FakeEngine>,
        access_mode: AccessMode,
    ) -> App {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open(&dir.path().join("outcrop.db"))
            .await
            .unwrap();
        store.ensure_defaults().await.unwrap();
        store.set_dev_key(true).await.unwrap();
        let catalog = Catalog::builtin_with(None, &Default::default()).unwrap();
        let mut service = Service::new(Arc::new(store), catalog);
        for entry in service.catalog.entries() {
            if entry.output_modalities.iter().any(|m| m == "EMBEDDING") {
                service
                    .embedders
                    .insert(entry.backing_model.clone(), Arc::new(FakeEmbedder));
            } else {
                service
                    .engines
                    .insert(entry.backing_model.clone(), text.clone());
            }
        }
        service.access_mode = access_mode;
        service.outbox = Some(dir.path().join("outbox"));
        let state = Arc::new(ApiState {
            service: Arc::new(service),
            prompt_mode: PromptMode::default(),
            deterministic: false,
            relays: Default::default(),
            request_timeout: None,
        });
        // Every request comes from this machine, as from a local client of the real server.
        let router = outcrop_api::router(state.clone()).layer(axum::Extension(Origin::loopback()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = router.clone();
        tokio::spawn(async move { axum::serve(listener, served).await });
        App {
            url,
            state,
            engine,
            router,
            _dir: dir,
        }
    }

    /// The AWS SDK for Rust, signed with the development key.
    pub async fn client(&self) -> Client {
        self.client_as("test", "test").await
    }

    pub async fn client_as(&self, key: &str, secret: &str) -> Client {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(key, secret, None, None, "test"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        Client::new(&config)
    }

    /// The account root, as the CLI acts.
    pub fn root(&self) -> Principal {
        Principal {
            account_id: outcrop_store::DEFAULT_ACCOUNT.to_owned(),
            arn: format!("arn:aws:iam::{}:root", outcrop_store::DEFAULT_ACCOUNT),
            access_key_id: String::new(),
            region: "us-east-1".to_owned(),
        }
    }

    /// A user with the given inline policy (none: `None`) and a key pair for it.
    pub async fn user(&self, name: &str, policy: Option<&str>) -> (String, String) {
        let service = &self.state.service;
        outcrop_service::identities::create_user(service, &self.root(), name, false)
            .await
            .unwrap();
        if let Some(policy) = policy {
            outcrop_service::identities::put_user_policy(service, &self.root(), name, "p", policy)
                .await
                .unwrap();
        }
        let key = outcrop_service::identities::create_access_key(service, &self.root(), name)
            .await
            .unwrap();
        (key.access_key_id.clone(), key.secret.expose().to_owned())
    }

    /// A request signed with `key`/`secret` (SigV4, service `bedrock`), sent through the
    /// router in process: for what the SDKs will not send.
    pub async fn signed(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        key: &str,
        secret: &str,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        self.signed_with(method, path, body, key, secret, &[]).await
    }

    /// [`App::signed`] with more (signed) headers.
    pub async fn signed_with(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        key: &str,
        secret: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        use aws_credential_types::Credentials;
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        use aws_sigv4::sign::v4;
        let identity = Credentials::new(key, secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("bedrock")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let host = self.url.trim_start_matches("http://").to_owned();
        let mut headers = vec![
            ("content-type", "application/json"),
            ("host", host.as_str()),
        ];
        headers.extend_from_slice(extra);
        let signable = SignableRequest::new(
            method,
            format!("{}{path}", self.url),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        self.send(request.body(Body::from(body.to_vec())).unwrap())
            .await
    }

    /// Sends a request through the router in process.
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, serde_json::Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        (parts.status, parts.headers, json)
    }

    /// The ledger once it holds `n` records (records of streams and cut calls are written in
    /// the background), oldest first.
    pub async fn ledger(&self, n: usize) -> Vec<UsageRecord> {
        for _ in 0..200 {
            let records = self
                .state
                .store
                .usage_records(None, None, None)
                .await
                .unwrap();
            if records.len() >= n {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the ledger never held {n} records");
    }
}

impl App {
    /// InvokeModel through the SDK with the development key: the body as JSON (or text), or
    /// the error's (code, message).
    pub async fn invoke(
        &self,
        model: &str,
        body: &[u8],
    ) -> Result<serde_json::Value, (String, String)> {
        let out = self
            .client()
            .await
            .invoke_model()
            .model_id(model)
            .body(Blob::new(body))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(
            serde_json::from_slice(out.body().as_ref()).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(out.body().as_ref()).into())
            }),
        )
    }

    /// InvokeModelWithResponseStream through the SDK, once the stream is open.
    pub async fn stream(&self, model: &str, body: &[u8]) -> ChunkStream {
        self.client()
            .await
            .invoke_model_with_response_stream()
            .model_id(model)
            .body(Blob::new(body))
            .send()
            .await
            .unwrap()
            .body
    }
}

/// The events of an InvokeModelWithResponseStream answer.
pub type ChunkStream = aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver<
    aws_sdk_bedrockruntime::types::ResponseStream,
    aws_sdk_bedrockruntime::types::error::ResponseStreamError,
>;

/// A Converse user message of one text block.
pub fn user_message(text: &str) -> aws_sdk_bedrockruntime::types::Message {
    use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, Message};
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(text.into()))
        .build()
        .unwrap()
}

/// A Claude text-completion body.
pub fn claude_body(prompt: &str, max_tokens: u32) -> Vec<u8> {
    serde_json::json!({ "prompt": prompt, "max_tokens_to_sample": max_tokens })
        .to_string()
        .into_bytes()
}

/// The service error an SDK call failed with: (code, message).
pub fn sdk_error<E, R>(e: aws_sdk_bedrockruntime::error::SdkError<E, R>) -> (String, String)
where
    E: aws_sdk_bedrockruntime::error::ProvideErrorMetadata,
{
    use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}
