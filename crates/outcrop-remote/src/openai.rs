//! A backing model served by an OpenAI-compatible server.

use crate::pool::{Lease, NoEndpoint, Pool};
use crate::sse::Events;
use async_trait::async_trait;
use futures_util::StreamExt;
use outcrop_engine::{
    Engine, EngineError, EngineGauges, GenerationEvent, GenerationStream, SubmitError,
};
use outcrop_types::{
    Constraint, FaultKind, GenerationError, GenerationRequest, ModelInfo, Prompt, Role, StopReason,
    Usage,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where and how to reach the server.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The backing model's name in Outcrop (logs, health).
    pub name: String,
    /// Base URLs ending in `/v1` (`http://gpu-1:8000/v1`): each generation goes to the
    /// healthy one with the fewest outstanding requests, and to another when the first cannot
    /// be reached or fails before answering.
    pub endpoints: Vec<String>,
    /// The model name the server serves.
    pub model: String,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// Connecting, and the whole answer.
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Generations sent at once to each endpoint; beyond it on all, requests are throttled.
    pub max_in_flight: usize,
    /// Consecutive failures (unreachable, 5xx, a broken stream, a failed check) that eject
    /// an endpoint until a check succeeds; 0: never ejected.
    pub eject_after: u32,
    /// How often each endpoint's `GET /models` is checked; `None`: never.
    pub health_interval: Option<Duration>,
    /// Prompts that start alike go to the same endpoint (its KV cache may hold the prefix)
    /// while it is not much busier than the others.
    pub prefix_affinity: bool,
    /// Tools the model may choose to call go to the server as OpenAI `tools`, so that its
    /// own tool-call parsing (and llama-server's grammar) applies; otherwise they are
    /// instructions in the system turn and the calls are read from the text.
    pub native_tools: bool,
    /// The context the server's model has (for health and CountTokens limits).
    pub context_tokens: u32,
}

pub struct OpenAiEngine {
    config: OpenAiConfig,
    client: reqwest::Client,
    pool: Arc<Pool>,
    active: Arc<AtomicUsize>,
    aborted: Arc<AtomicBool>,
}

impl OpenAiEngine {
    /// The engine, and (inside a Tokio runtime) its endpoints' health checks, which stop
    /// when the engine is dropped.
    pub fn new(config: OpenAiConfig) -> Result<Self, String> {
        if config.endpoints.is_empty() {
            return Err(format!("backing model {}: no url", config.name));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            // Idle connections are let go before the servers' own keep-alive timeouts (5 s for
            // llama-server and uvicorn) close them: a connection the server closed is only
            // found out when a request is sent on it.
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .map_err(|e| e.to_string())?;
        let pool = Arc::new(Pool::new(
            &config.endpoints,
            config.max_in_flight,
            config.eject_after,
            config.prefix_affinity,
        ));
        if let (Some(every), Ok(runtime)) = (
            config.health_interval,
            tokio::runtime::Handle::try_current(),
        ) {
            runtime.spawn(check_health(
                Arc::downgrade(&pool),
                client.clone(),
                config.api_key.clone(),
                every,
            ));
        }
        Ok(OpenAiEngine {
            pool,
            client,
            active: Arc::new(AtomicUsize::new(0)),
            aborted: Arc::new(AtomicBool::new(false)),
            config,
        })
    }
}

/// Checks every endpoint's `GET /models` each `every` while the pool lives.
async fn check_health(
    pool: std::sync::Weak<Pool>,
    client: reqwest::Client,
    api_key: Option<String>,
    every: Duration,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let urls: Vec<(usize, String)> = pool.urls().map(|(i, u)| (i, u.to_owned())).collect();
        for (i, url) in urls {
            let mut check = client
                .get(format!("{}/models", url.trim_end_matches('/')))
                .timeout(every.clamp(Duration::from_secs(1), Duration::from_secs(5)));
            if let Some(key) = &api_key {
                check = check.bearer_auth(key);
            }
            match check.send().await {
                Ok(r) if r.status().is_success() => pool.succeeded(i),
                Ok(r) => {
                    tracing::debug!(endpoint = %url, status = %r.status(), "health check failed");
                    pool.failed(i);
                }
                Err(e) => {
                    tracing::debug!(endpoint = %url, error = %e, "health check failed");
                    pool.failed(i);
                }
            }
        }
    }
}

/// What a prompt starts with, hashed: its system turn and first user turn (or its first
/// 1,024 bytes of raw text), for prefix affinity.
fn prefix_hash(prompt: &Prompt) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match prompt {
        Prompt::Raw(text) => text.as_bytes()[..text.len().min(1024)].hash(&mut h),
        Prompt::Chat(turns) | Prompt::ChatWithTools { turns, .. } => {
            for t in turns.iter().take(2) {
                t.content.hash(&mut h);
            }
        }
    }
    h.finish()
}

fn role(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn messages(turns: &[outcrop_types::Turn]) -> Vec<Value> {
    turns
        .iter()
        .map(|t| json!({ "role": role(t.role), "content": t.content }))
        .collect()
}

/// The request body and the path it goes to.
/// A call the model may choose to make, as the server's `tools`: how its calls are written
/// back into the text (`trigger` and `close` of the request's constraint), for the API layer
/// to split them out as it does a local model's.
struct NativeCalls {
    trigger: String,
    close: String,
}

fn body(
    request: &GenerationRequest,
    model: &str,
    native_tools: bool,
) -> (&'static str, Value, Option<NativeCalls>) {
    let s = &request.sampling;
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens,
        "temperature": s.temperature,
        "seed": s.seed,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if let Some(p) = s.top_p {
        body["top_p"] = json!(p);
    }
    if let Some(k) = s.top_k {
        body["top_k"] = json!(k);
    }
    if !request.stop_sequences.is_empty() {
        body["stop"] = json!(request.stop_sequences);
    }
    // A whole-output schema is the servers' structured output; a grammar that starts after
    // a trigger (a tool call the model may choose to make) has no OpenAI form, and the text
    // is left free.
    if let Some(Constraint::Json { schema }) = &s.constraint {
        let schema: Value = serde_json::from_str(schema).unwrap_or(json!({}));
        body["response_format"] = json!({ "type": "json_schema", "json_schema": { "name": "output", "schema": schema, "strict": true } });
    }
    let native = match (&request.prompt, &s.constraint) {
        (
            Prompt::ChatWithTools { tools, .. },
            Some(Constraint::JsonAfter { trigger, close, .. }),
        ) if native_tools => {
            let tools: Vec<Value> = tools
                .definitions
                .iter()
                .map(|d| {
                    let parameters: Value =
                        serde_json::from_str(&d.parameters).unwrap_or(json!({"type": "object"}));
                    json!({ "type": "function", "function": {
                        "name": d.name, "description": d.description, "parameters": parameters } })
                })
                .collect();
            body["tools"] = json!(tools);
            body["tool_choice"] = json!("auto");
            Some(NativeCalls {
                trigger: trigger.clone(),
                close: close.clone(),
            })
        }
        _ => None,
    };
    // Otherwise tools are described in the system turn: the server's own tool parsing is not
    // used, the API layer reads the calls from the text.
    let prompt = match (&native, request.prompt.clone()) {
        (Some(_), Prompt::ChatWithTools { turns, .. }) => Prompt::Chat(turns),
        (_, prompt) => prompt.instructed(),
    };
    let (path, body) = match prompt {
        Prompt::Raw(text) => {
            body["prompt"] = json!(text);
            ("completions", body)
        }
        Prompt::Chat(turns) | Prompt::ChatWithTools { turns, .. } => {
            let messages = messages(&turns);
            // A trailing assistant turn is a prefill: the answer continues it (vLLM's
            // `continue_final_message`; servers without it read it as history).
            if turns.last().is_some_and(|t| t.role == Role::Assistant) {
                body["continue_final_message"] = json!(true);
                body["add_generation_prompt"] = json!(false);
            }
            body["messages"] = json!(messages);
            ("chat/completions", body)
        }
    };
    (path, body, native)
}

/// An error with its causes ("error sending request" alone does not say what happened).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn unavailable() -> GenerationError {
    fault(
        FaultKind::ServiceUnavailable,
        "The model is not available right now. Try again later.",
    )
}

/// Streamed tool calls, put together: each arrives in fragments (its id and name, then pieces
/// of its arguments' text) under an `index`. Some servers and proxies give every call index 0;
/// a fragment with an id other than the open call's then starts a new call.
#[derive(Default)]
struct ToolCalls(Vec<ToolCall>);

#[derive(Default)]
struct ToolCall {
    index: u64,
    id: String,
    name: String,
    arguments: String,
}

impl ToolCalls {
    fn add(&mut self, fragment: &Value) {
        let index = fragment["index"].as_u64().unwrap_or(0);
        let id = fragment["id"].as_str().unwrap_or("");
        let open = self.0.iter().rposition(|c| c.index == index);
        let at = match open {
            Some(i) if id.is_empty() || self.0[i].id.is_empty() || self.0[i].id == id => i,
            _ => {
                self.0.push(ToolCall {
                    index,
                    ..ToolCall::default()
                });
                self.0.len() - 1
            }
        };
        let call = &mut self.0[at];
        if call.id.is_empty() {
            call.id = id.to_owned();
        }
        let f = &fragment["function"];
        call.name.push_str(f["name"].as_str().unwrap_or(""));
        call.arguments
            .push_str(f["arguments"].as_str().unwrap_or(""));
    }
}

/// The server's tool calls in the text form a local model writes them in.
fn written_calls(native: &NativeCalls, calls: &[ToolCall]) -> String {
    calls
        .iter()
        .filter(|c| !c.name.is_empty())
        .map(
            |ToolCall {
                 name, arguments, ..
             }| {
                // Arguments that are not JSON stay as the server wrote them: the API layer then
                // reads no call from them, rather than a call with made-up input.
                let call = match serde_json::from_str::<Value>(arguments) {
                    Ok(arguments) => json!({ "name": name, "arguments": arguments }).to_string(),
                    Err(_) => format!("{{\"name\": {}, \"arguments\": {arguments}}}", json!(name)),
                };
                format!("{}\n{call}\n{}", native.trigger, native.close)
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

fn fault(kind: FaultKind, message: impl Into<String>) -> GenerationError {
    GenerationError::Fault {
        kind,
        message: message.into(),
    }
}

/// An error answer of the server, as the exception a Bedrock client expects.
fn refused(status: reqwest::StatusCode, text: &str) -> GenerationError {
    let message = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or(v["message"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| text.chars().take(300).collect());
    match status.as_u16() {
        400 | 422 => fault(FaultKind::Validation, message),
        429 => fault(FaultKind::Throttling, message),
        408 | 504 => fault(FaultKind::ModelTimeout, message),
        401 | 403 => {
            tracing::error!(%status, %message, "the remote engine refused Outcrop's credentials");
            fault(
                FaultKind::ServiceUnavailable,
                "The model is not available right now. Try again later.",
            )
        }
        _ => {
            tracing::warn!(%status, %message, "the remote engine failed");
            fault(
                FaultKind::ServiceUnavailable,
                "The model is not available right now. Try again later.",
            )
        }
    }
}

/// Why the server stopped: `length`, or a stop sequence when it names the one that matched
/// (vLLM's `stop_reason`), else the end of the turn.
fn stop_reason(finish: Option<&str>, matched: Option<String>) -> StopReason {
    match (finish, matched) {
        (Some("length"), _) => StopReason::MaxTokens,
        (_, Some(sequence)) => StopReason::StopSequence(sequence),
        _ => StopReason::EndOfTurn,
    }
}

#[async_trait]
impl Engine for OpenAiEngine {
    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, SubmitError> {
        if self.aborted.load(Ordering::Relaxed) {
            return Err(SubmitError::Stopped);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        if request.max_tokens == 0 {
            // Nothing to generate; the prompt's size is the server's to tell (CountTokens).
            let _ = tx.send(GenerationEvent::Started { input_tokens: 0 });
            let usage = Usage::default();
            let _ = tx.send(GenerationEvent::Finished {
                reason: StopReason::MaxTokens,
                usage,
            });
            return Ok(rx);
        }
        let prefix = prefix_hash(&request.prompt);
        let lease = match self.pool.choose(Some(prefix), &[]) {
            Ok(lease) => lease,
            Err(NoEndpoint::Busy) => return Err(SubmitError::QueueFull),
            Err(NoEndpoint::Unhealthy) => {
                let _ = tx.send(GenerationEvent::Failed(unavailable()));
                return Ok(rx);
            }
        };
        let call = Call {
            native_tools: self.config.native_tools,
            client: self.client.clone(),
            pool: self.pool.clone(),
            prefix,
            api_key: self.config.api_key.clone(),
            model: self.config.model.clone(),
            aborted: self.aborted.clone(),
        };
        let active = self.active.clone();
        active.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            call.run(request, tx, lease).await;
            active.fetch_sub(1, Ordering::Relaxed);
        });
        Ok(rx)
    }

    fn model(&self) -> Option<ModelInfo> {
        Some(ModelInfo {
            name: self.config.name.clone(),
            context_tokens: self.config.context_tokens,
            max_sequences: (self.config.max_in_flight * self.config.endpoints.len()) as u32,
            kv_tokens: self.config.context_tokens,
        })
    }

    async fn wait_ready(&self) -> Option<ModelInfo> {
        self.model()
    }

    fn gauges(&self) -> EngineGauges {
        let standing = self.pool.standing();
        EngineGauges {
            active_sequences: self.active.load(Ordering::Relaxed),
            waiting: 0,
            reserved_kv: 0,
            endpoints: standing.total,
            healthy_endpoints: standing.healthy,
            ..Default::default()
        }
    }

    fn abort_all(&self) {
        self.aborted.store(true, Ordering::Relaxed);
    }

    /// The server's own count: vLLM's `/tokenize` (messages rendered with its template), else
    /// llama-server's `/apply-template` then `/tokenize`; a server with neither is a clear
    /// ValidationException.
    async fn count_tokens(&self, prompt: Prompt) -> Result<u32, EngineError> {
        let lease = self.pool.choose(None, &[]).ok();
        let base = lease
            .as_ref()
            .map_or_else(|| self.config.endpoints[0].clone(), |l| l.url().to_owned());
        let root = base
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_owned();
        let post = |path: &str, body: Value| {
            let mut req = self.client.post(format!("{root}/{path}")).json(&body);
            if let Some(key) = &self.config.api_key {
                req = req.bearer_auth(key);
            }
            async move {
                let r = req.send().await.ok()?;
                if !r.status().is_success() {
                    return None;
                }
                r.json::<Value>().await.ok()
            }
        };
        let model = &self.config.model;
        let (vllm, text) = match prompt.instructed() {
            Prompt::Raw(text) => (json!({ "model": model, "prompt": text }), Some(text)),
            Prompt::Chat(turns) | Prompt::ChatWithTools { turns, .. } => (
                json!({ "model": model, "messages": messages(&turns), "add_generation_prompt": true }),
                None,
            ),
        };
        if let Some(count) = post("tokenize", vllm.clone())
            .await
            .and_then(|v| v["count"].as_u64())
        {
            return Ok(count as u32);
        }
        let content = match text {
            Some(text) => Some(text),
            None => post("apply-template", json!({ "messages": vllm["messages"] }))
                .await
                .and_then(|v| v["prompt"].as_str().map(str::to_owned)),
        };
        if let Some(content) = content {
            let tokens = post(
                "tokenize",
                json!({ "content": content, "add_special": true, "parse_special": true }),
            )
            .await;
            if let Some(tokens) = tokens.as_ref().and_then(|v| v["tokens"].as_array()) {
                return Ok(tokens.len() as u32);
            }
        }
        Err(EngineError::Generation(fault(
            FaultKind::Validation,
            format!("CountTokens is not available for this model: its server ({}) has no tokenize endpoint that Outcrop knows (vLLM's or llama-server's).", self.config.name),
        )))
    }
}

/// One generation sent to the server.
struct Call {
    native_tools: bool,
    client: reqwest::Client,
    pool: Arc<Pool>,
    prefix: u64,
    api_key: Option<String>,
    model: String,
    aborted: Arc<AtomicBool>,
}

impl Call {
    /// The streamed response of the first endpoint that answers, starting with `lease`'s;
    /// another is tried only while no byte of an answer has come (unreachable, 5xx, 429).
    async fn send(
        &self,
        path: &str,
        body: &Value,
        mut lease: Lease,
    ) -> Result<(reqwest::Response, Lease), GenerationError> {
        let mut tried = Vec::new();
        // A kept-alive connection the server closed as it was reused fails the send without
        // any answer; such a request is sent once more to the same endpoint.
        let mut resent = false;
        // Whether the last try could not reach its endpoint (and by a refused connection).
        let mut unreachable: Option<bool>;
        loop {
            unreachable = None;
            let url = format!("{}/{path}", lease.url().trim_end_matches('/'));
            let mut req = self.client.post(&url).json(body);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            let error = match req.send().await {
                Ok(r) if r.status().is_success() => return Ok((r, lease)),
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    // A server that is up but refuses is the answer; only unreachable or
                    // overloaded servers are passed over.
                    if !(status.is_server_error() || status.as_u16() == 429) {
                        self.pool.succeeded(lease.index());
                        return Err(refused(status, &text));
                    }
                    if status.is_server_error() {
                        self.pool.failed(lease.index());
                    }
                    refused(status, &text)
                }
                Err(e) if e.is_timeout() => {
                    // A server that hangs is not asked twice: the client has waited enough.
                    tracing::warn!(endpoint = %url, "remote engine did not answer in time");
                    self.pool.failed(lease.index());
                    return Err(fault(
                        FaultKind::ModelTimeout,
                        "The model did not answer in time.",
                    ));
                }
                Err(e) if !e.is_connect() && !resent => {
                    tracing::debug!(endpoint = %url, error = %causes(&e), "request not sent; sending it again");
                    resent = true;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(endpoint = %url, error = %causes(&e), "remote engine unreachable");
                    unreachable = Some(e.is_connect());
                    unavailable()
                }
            };
            tried.push(lease.index());
            match self.pool.choose(Some(self.prefix), &tried) {
                Ok(next) => {
                    if unreachable.take().is_some() {
                        self.pool.failed(lease.index());
                    }
                    lease = next;
                    resent = false;
                }
                // The only endpoint refused a connection: a server whose accept queue was
                // full for a moment gets one more try before the request fails.
                Err(_) if unreachable == Some(true) && !resent => {
                    tried.pop();
                    resent = true;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => {
                    if unreachable.is_some() {
                        self.pool.failed(lease.index());
                    }
                    return Err(error);
                }
            }
        }
    }

    async fn run(
        self,
        request: GenerationRequest,
        tx: mpsc::UnboundedSender<GenerationEvent>,
        lease: Lease,
    ) {
        let (path, body, native) = body(&request, &self.model, self.native_tools);
        let response = tokio::select! {
            r = self.send(path, &body, lease) => r,
            () = tx.closed() => return,
        };
        // The lease is held until the answer has been read.
        let (response, lease) = match response {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(GenerationEvent::Failed(e));
                return;
            }
        };
        let broke = |reason: &str| {
            tracing::warn!(endpoint = %lease.url(), reason, "remote engine stream broke");
            self.pool.failed(lease.index());
            GenerationEvent::Failed(fault(
                FaultKind::ModelStreamError,
                "The model failed while generating the response.",
            ))
        };
        let mut bytes = response.bytes_stream();
        let mut events = Events::default();
        let (mut started, mut finish, mut usage, mut pieces) =
            (false, None::<String>, None::<Usage>, 0u32);
        let mut matched = None::<String>;
        // `[DONE]` or a finish reason: an answer that has neither was cut off.
        let mut done = false;
        let mut calls = ToolCalls::default();
        loop {
            let chunk = tokio::select! {
                c = bytes.next() => c,
                // The client went away: dropping the response closes the upstream stream.
                () = tx.closed() => return,
            };
            let chunk = match chunk {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    let _ = tx.send(broke(&e.to_string()));
                    return;
                }
                None => break,
            };
            if self.aborted.load(Ordering::Relaxed) {
                let _ = tx.send(GenerationEvent::Failed(GenerationError::ShuttingDown));
                return;
            }
            for data in events.push(&chunk) {
                if data == "[DONE]" {
                    done = true;
                    continue;
                }
                let Ok(v) = serde_json::from_str::<Value>(&data) else {
                    continue;
                };
                if v.get("error").is_some() {
                    let message = v["error"]["message"]
                        .as_str()
                        .unwrap_or("The model failed.")
                        .to_owned();
                    let _ = tx.send(GenerationEvent::Failed(fault(
                        FaultKind::ModelStreamError,
                        message,
                    )));
                    return;
                }
                if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                    usage = Some(Usage {
                        input_tokens: u["prompt_tokens"].as_u64().unwrap_or(0) as u32,
                        output_tokens: u["completion_tokens"].as_u64().unwrap_or(0) as u32,
                        ..Default::default()
                    });
                }
                let choice = &v["choices"][0];
                let text = choice["delta"]["content"]
                    .as_str()
                    .or(choice["text"].as_str())
                    .unwrap_or("");
                if !started && (!text.is_empty() || !choice.is_null()) {
                    started = true;
                    let _ = tx.send(GenerationEvent::Started {
                        input_tokens: usage.map_or(0, |u| u.input_tokens),
                    });
                }
                if !text.is_empty() {
                    pieces += 1;
                    if tx.send(GenerationEvent::Text(text.to_owned())).is_err() {
                        return;
                    }
                }
                for fragment in choice["delta"]["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    calls.add(fragment);
                }
                if let Some(f) = choice["finish_reason"].as_str() {
                    finish = Some(f.to_owned());
                }
                if let Some(m) = choice["stop_reason"].as_str() {
                    matched = Some(m.to_owned()).filter(|m| request.stop_sequences.contains(m));
                }
            }
        }
        if !done && finish.is_none() {
            let _ = tx.send(broke("the answer ended without a finish reason"));
            return;
        }
        self.pool.succeeded(lease.index());
        if let (Some(native), false) = (&native, calls.0.is_empty()) {
            let text = written_calls(native, &calls.0);
            pieces += 1;
            let _ = tx.send(GenerationEvent::Text(text));
        }
        if !started {
            let _ = tx.send(GenerationEvent::Started {
                input_tokens: usage.map_or(0, |u| u.input_tokens),
            });
        }
        let usage = usage.unwrap_or(Usage {
            input_tokens: 0,
            output_tokens: pieces,
            ..Default::default()
        });
        let reason = stop_reason(finish.as_deref(), matched);
        let _ = tx.send(GenerationEvent::Finished { reason, usage });
    }
}

#[cfg(test)]
mod tests;
